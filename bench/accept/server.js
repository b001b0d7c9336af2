// bench/accept peer: Node's cluster doing the same as server.cpp.
// NODE_CLUSTER_SCHED_POLICY=rr (round-robin) or none (shared socket).
const cluster = require('cluster');
const net = require('net');
const port = Number(process.argv[2] || 8000);
const workers = Number(process.env.WORKERS || 2);
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const suffix = ' ' + process.pid + '\n';
  net.createServer((sock) => {
    let line = '';
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      line += d;
      if (!line.endsWith('\n')) return;
      sock.end(line.slice(0, -1) + suffix);
    });
    sock.on('error', () => {});
  }).listen(port, '127.0.0.1');
}
