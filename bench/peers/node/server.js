// The Node.js peer: a broadcast server on the `ws` package, doing tickerd's job
// in the benchmark. It follows the upstream WebSocket, wraps each message once in
// tickerd's envelope (one Buffer shared by every client) and sends it to every
// subscribed client.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.env.PORT || 19001);
const upstreamUrl = process.env.UPSTREAM || 'ws://127.0.0.1:19000/';

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const subscribed = new Set();
const ACK = '{"type":"ack","id":1,"op":"subscribe","topics":["bench.*"]}';

wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    if (data.toString().includes('"subscribe"')) {
      subscribed.add(ws);
      ws.send(ACK);
    }
  });
  ws.on('close', () => subscribed.delete(ws));
  ws.on('error', () => subscribed.delete(ws));
});

const seqs = new Map();
function follow() {
  const up = new WebSocket(upstreamUrl, { perMessageDeflate: false });
  up.on('message', (data) => {
    const text = data.toString();
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    const topic = 'bench.' + msg.sym;
    const seq = (seqs.get(topic) || 0) + 1;
    seqs.set(topic, seq);
    const frame = Buffer.from('{"type":"update","topic":"' + topic + '","seq":' + seq +
      ',"ts":' + Date.now() + ',"data":' + text + '}');
    for (const c of subscribed) {
      if (c.readyState === WebSocket.OPEN) c.send(frame, { binary: false });
    }
  });
  up.on('close', () => setTimeout(follow, 200));
  up.on('error', () => {});
}
follow();
