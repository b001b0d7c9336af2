// A Node program on the other end of a Corral channel (started with
// NODE_CHANNEL_FD): it says 'ready', sends one message of its own, echoes
// every message back as {echo: m}, and leaves on 'shutdown'.
'use strict';
process.on('message', (m) => {
  if (m === 'shutdown') {
    process.disconnect();  // closes the channel; nothing else keeps node alive
    return;
  }
  process.send({ echo: m });
});
process.send('ready');
process.send({ from: 'node', pid: process.pid, text: 'h\u00e9llo \u2713 \ud83d\ude80 \u2028', n: 3.5, list: [1, null, true, 'x'] });
