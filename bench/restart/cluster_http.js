// bench/restart peer: Node's cluster serving "Hello World from <pid>", with a
// rolling restart done by hand on SIGHUP, the way Node's docs suggest: fork a
// new worker, wait for 'listening', disconnect the old one, next.
// Prints "Restarted all workers in <ms> ms" when every old worker has exited.
const cluster = require('cluster');
const http = require('http');
const port = Number(process.env.PORT || 3000);
const count = Number(process.argv[2] || 2);
if (cluster.isPrimary) {
  for (let i = 0; i < count; i++) cluster.fork();
  let restarting = false;
  process.on('SIGHUP', () => {
    if (restarting) return;
    restarting = true;
    const t0 = process.hrtime.bigint();
    const old = Object.values(cluster.workers);
    let pendingExits = old.length;
    const next = (i) => {
      if (i === old.length) return;
      const fresh = cluster.fork();
      fresh.once('listening', () => {
        old[i].once('exit', () => {
          if (--pendingExits === 0) {
            restarting = false;
            console.log(`Restarted all workers in ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
          }
        });
        old[i].disconnect();
        next(i + 1);
      });
    };
    next(0);
  });
} else {
  const hello = `Hello World from ${process.pid}`;
  http.createServer((req, res) => { res.writeHead(200); res.end(hello); }).listen(port);
}
