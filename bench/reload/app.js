// bench/reload's app, run by both managers: examples/node/app.js, except that a stopping server does not close idle
// keep-alive connections at once (Node's server.close() does since v19): a
// client may be writing its next request into one, and loses it. Each
// connection instead gets Connection: close on its next response; those still
// idle a second later are closed. Serves on the inherited fd 3 (corral's
// cluster mode), else listens on PORT (PM2's cluster mode shares it).
const http = require('http');

const hello = `Hello from Node ${process.pid}\n`;
let stopping = false;
const server = http.createServer((req, res) => {
  if (stopping) res.setHeader('Connection', 'close');
  res.end(hello);
});
server.keepAliveTimeout = 5000;
server.closeIdleConnections = () => {};  // called by close(); see above

const inherited = process.env.LISTEN_PID === String(process.pid) && Number(process.env.LISTEN_FDS || 0) >= 1;
server.listen(inherited ? { fd: 3 } : Number(process.env.PORT), () => {
  console.log(`Node app ${process.pid} serving`);
  if (process.send) process.send('ready');
});

function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  setTimeout(() => http.Server.prototype.closeIdleConnections.call(server), 1000).unref();
  setTimeout(() => process.exit(1), 5000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('message', (msg) => { if (msg === 'shutdown') stop(); });
