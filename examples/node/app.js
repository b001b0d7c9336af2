// A Node HTTP server for `corral start app.js -i 2 --port 3000`.
//
// It serves on the socket the manager passes (fd 3, systemd's protocol), says
// 'ready' over the channel (process.send, as under PM2's wait_ready), and on
// the 'shutdown' message (or SIGINT) closes gracefully: requests in flight
// finish, idle keep-alive connections close, then it exits. Run alone it
// listens on PORT (default 3000).
const http = require('http');

const hello = `Hello from Node ${process.pid}\n`;
let stopping = false;
const server = http.createServer((req, res) => {
  if (stopping) res.setHeader('Connection', 'close');
  res.end(hello);
});
server.keepAliveTimeout = 5000;

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
  server.closeIdleConnections();
  setTimeout(() => process.exit(1), 5000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('message', (msg) => { if (msg === 'shutdown') stop(); });
