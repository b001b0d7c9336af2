// A Node HTTP server for `corral start app.js -i 2 --port 3000`.
//
// It serves on the socket the manager passes (fd 3, systemd's protocol), says
// 'ready' over the channel (process.send, as under PM2's wait_ready), and on
// the 'shutdown' message (or SIGINT) closes gracefully: requests in flight
// finish, keep-alive connections close at a request boundary, then it exits.
// Run alone it listens on PORT (default 3000).
//
// Node's server.close() closes idle keep-alive connections at once (since
// v19), while a client may be writing its next request into one: that request
// is lost. So a stopping server instead answers each connection's next request
// with Connection: close, and closes those still idle a second later.
const http = require('http');

const hello = `Hello from Node ${process.pid}\n`;
let stopping = false;
const server = http.createServer((req, res) => {
  if (stopping) res.setHeader('Connection', 'close');
  res.end(hello);
});
server.keepAliveTimeout = 5000;
server.closeIdleConnections = () => {};  // server.close() calls it; see above

const inherited = process.env.LISTEN_PID === String(process.pid) && Number(process.env.LISTEN_FDS || 0) >= 1;
server.listen(inherited ? { fd: 3 } : Number(process.env.PORT || 3000), () => {
  console.log(`Node app ${process.pid} serving`);
  if (process.send) process.send('ready');
});

function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => {
    console.log(`Node app ${process.pid} stopped`);
    process.exit(0);
  });
  setTimeout(() => http.Server.prototype.closeIdleConnections.call(server), 1000).unref();
  setTimeout(() => process.exit(1), 5000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('message', (msg) => { if (msg === 'shutdown') stop(); });
