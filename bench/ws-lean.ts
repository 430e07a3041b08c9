/**
 * A minimal WebSocket client (RFC 6455) for load generation: one `net` socket, the opening
 * handshake checked (status 101 and Sec-WebSocket-Accept), server frames split in place and
 * text messages handed over as (buffer, start, end) without copying or decoding, pings answered,
 * masked client frames. No extensions (none are offered). For the bench only: the subscriber
 * process must cost as little as it can (see bench/fanout-clients.ts).
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

export interface LeanWebSocket {
  sendText(text: string): void;
  destroy(): void;
}

export interface LeanHandlers {
  onOpen(): void;
  /** A whole text message: bytes [start, end) of `data` (valid until the handler returns). */
  onText(data: Buffer, start: number, end: number): void;
  /** The connection ended: the close frame's code and reason, or 1006 when there was none. */
  onClose(code: number, reason: string): void;
  onError(err: Error): void;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Shared by every socket of the process: reads are handled synchronously, one at a time. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);

export function leanWebSocket(url: string, protocol: string | undefined, h: LeanHandlers): LeanWebSocket {
  const u = new URL(url);
  const key = randomBytes(16).toString('base64');
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  // onread: libuv reads into one reused buffer and calls back directly, skipping the Readable
  // stream machinery (a 'data' event per read); every frame is handled before the next read.
  const socket = net.connect({ host: u.hostname, port: Number(u.port || 80), onread: { buffer: readBuffer, callback: (n, buf) => {
    onData((buf as Buffer).subarray(0, n));
    return true;
  } } });
  socket.setNoDelay(true);
  let open = false;
  let closed = false;
  let pending: Buffer | undefined; // bytes of an incomplete handshake or frame
  let fragments: Buffer[] | undefined; // a fragmented text message being collected

  const frame = (opcode: number, payload: Buffer): Buffer => {
    const n = payload.length;
    const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(head + 4 + n);
    out[0] = 0x80 | opcode;
    if (head === 2) out[1] = 0x80 | n;
    else if (head === 4) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(n, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeBigUInt64BE(BigInt(n), 2);
    }
    const mask = randomBytes(4);
    mask.copy(out, head);
    for (let i = 0; i < n; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
    return out;
  };

  const fail = (err: Error) => {
    if (closed) return;
    closed = true;
    socket.destroy();
    h.onError(err);
  };

  /** Splits and handles every whole frame of buf; returns the index of the first incomplete one. */
  const frames = (buf: Buffer): number => {
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      if (b1 & 0x80) throw new Error('the server sent a masked frame');
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (buf.length - at < head + len) break;
      const start = at + head;
      const end = start + len;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode === 0x1 && fin && !fragments) h.onText(buf, start, end);
      else if (opcode === 0x1 || opcode === 0x0) {
        (fragments ??= []).push(Buffer.from(buf.subarray(start, end)));
        if (fin) {
          const whole = Buffer.concat(fragments);
          fragments = undefined;
          h.onText(whole, 0, whole.length);
        }
      } else if (opcode === 0x9) socket.write(frame(0xa, buf.subarray(start, end)));
      else if (opcode === 0x8) {
        const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
        const reason = len > 2 ? buf.toString('utf8', start + 2, end) : '';
        if (!closed) {
          closed = true;
          socket.end(frame(0x8, buf.subarray(start, Math.min(end, start + 2))));
          h.onClose(code, reason);
        }
        return buf.length;
      } else if (opcode !== 0xa) throw new Error(`unexpected frame opcode ${opcode}`);
      at = end;
    }
    return at;
  };

  socket.on('connect', () => {
    socket.write(
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ''}\r\n`,
    );
  });
  function onData(chunk: Buffer): void {
    if (closed) return;
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    try {
      if (!open) {
        const endOfHead = buf.indexOf('\r\n\r\n');
        if (endOfHead < 0) {
          pending = Buffer.from(buf);
          return;
        }
        const head = buf.toString('latin1', 0, endOfHead);
        if (!/^HTTP\/1\.1 101 /.test(head)) throw new Error(`handshake refused: ${head.split('\r\n')[0]}`);
        const got = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
        if (got !== accept) throw new Error('handshake: wrong Sec-WebSocket-Accept');
        open = true;
        h.onOpen();
        buf = buf.subarray(endOfHead + 4);
      }
      const used = frames(buf);
      // the read buffer is reused by the next read: keep a copy of an incomplete frame
      if (used < buf.length && !closed) pending = Buffer.from(buf.subarray(used));
    } catch (e) {
      fail(e as Error);
    }
  }
  socket.on('error', (e) => fail(e));
  socket.on('close', () => {
    if (closed) return;
    closed = true;
    h.onClose(1006, 'connection lost');
  });

  return {
    sendText(text) {
      if (!closed) socket.write(frame(0x1, Buffer.from(text)));
    },
    destroy() {
      closed = true;
      socket.destroy();
    },
  };
}
