// sink.mjs - a real SMTP server on loopback for the notification tests (nodemailer's
// smtp-server), keeping every message it accepts; and mailparser to read them.
// refuse(n, code): the next n messages are refused at RCPT TO with `code` (451: try again later,
// 550: no such user), so tests can drive the sender's retries and permanent failures.
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

export { simpleParser };

export async function startSink() {
  const sink = { messages: [], refusals: [], rcptSeen: 0 };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, session, cb) {
      sink.rcptSeen++;
      const code = sink.refusals.shift();
      if (code) {
        const err = new Error(code >= 500 ? 'No such user here' : 'Mailbox busy, try again later');
        err.responseCode = code;
        return cb(err);
      }
      return cb();
    },
    onData(stream, session, cb) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        sink.messages.push({
          from: session.envelope.mailFrom && session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        cb();
      });
    },
  });
  await new Promise((res, rej) => { server.once('error', rej); server.listen(0, '127.0.0.1', res); });
  sink.port = server.server.address().port;
  sink.refuse = (n, code = 451) => { for (let i = 0; i < n; i++) sink.refusals.push(code); };
  sink.close = () => new Promise((r) => server.close(r));
  // The first message to `to` that arrived after `after` messages, polled for up to ~20 s.
  sink.waitFor = async (pred, what = 'a message') => {
    for (let i = 0; i < 800; i++) {
      const m = sink.messages.find(pred);
      if (m) return { ...m, parsed: await simpleParser(m.raw) };
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`the SMTP sink did not receive ${what}; it has ${sink.messages.length} messages`);
  };
  return sink;
}
