// Node's side of the IPC benchmark: the same two measurements as ipc_bench,
// with Node's cluster module and process.send (serialization 'json').
//
//   node node_ipc.js oneway [N] | pingpong [N]
//   prints "<mode> <N> <seconds> <per second>"
// With IPC_PIN=1 the primary runs on CPU 0 and the worker on CPU 1 (Node has
// no affinity API: taskset does it).
'use strict';
const cluster = require('cluster');
if (process.env.IPC_PIN === '1') {
  require('child_process').execFileSync('taskset', ['-pc', cluster.isPrimary ? '0' : '1', String(process.pid)], { stdio: 'ignore' });
}
const mode = process.argv[2] || 'oneway';
const total = Number(process.argv[3] || (mode === 'oneway' ? 1000000 : 20000));

if (cluster.isPrimary) {
  const w = cluster.fork();
  let t0 = 0n;
  let received = 0;
  w.on('online', () => {
    t0 = process.hrtime.bigint();
    w.send(mode === 'oneway' ? 'start' : { seq: 0 });
  });
  w.on('message', (m) => {
    if (m.seq !== received) {
      console.error(`node_ipc: expected seq ${received}, got ${JSON.stringify(m)}`);
      process.exit(1);
    }
    if (++received === total) {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(`${mode} ${total} ${s.toFixed(6)} ${Math.round(total / s)}`);
      w.send('stop');
    } else if (mode === 'pingpong') {
      w.send({ seq: received });
    }
  });
} else {
  let seq = 0;
  let paused = false;
  // process.send() returns false when its queue is backed up; its callback
  // says a write finished, which is when we resume (Node has no 'drain' here).
  const onSent = () => {
    if (paused) {
      paused = false;
      setImmediate(pump);
    }
  };
  const pump = () => {
    while (seq < total) {
      if (!process.send({ seq: seq++, msg: 'hello' }, onSent)) {
        paused = true;
        return;
      }
    }
  };
  process.on('message', (m) => {
    if (m === 'start') pump();
    else if (m === 'stop') process.disconnect();
    else process.send(m);
  });
}
