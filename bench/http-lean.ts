/**
 * A minimal HTTP/1.1 keep-alive client for load generation (as wrk is): one `net` socket per
 * outstanding request, the request's bytes written at once, the response read by its
 * Content-Length (or chunked encoding) without Node's HTTP parser, IncomingMessage or stream
 * machinery. For the bench only: on a 2-core machine the load process's own CPU is taken from
 * the server it measures (bench/query-client.ts).
 */
import net from 'node:net';

export interface LeanResponse {
  status: number;
  body: string;
}

export interface LeanHttpConnection {
  /** Sends one request (`head` without the final CRLF pair, `body` as bytes) and resolves with the whole response. */
  request(head: string, body: Buffer): Promise<LeanResponse>;
  close(): void;
}

export function leanHttpConnection(host: string, port: number): LeanHttpConnection {
  const socket = net.connect({ host, port });
  socket.setNoDelay(true);
  let waiting: { resolve: (r: LeanResponse) => void; reject: (e: Error) => void } | undefined;
  let buf: Buffer = Buffer.alloc(0);
  let failed: Error | undefined;

  const fail = (e: Error) => {
    failed ??= e;
    const w = waiting;
    waiting = undefined;
    w?.reject(e);
  };

  /** A whole response at the start of buf: [status, body, bytes used], or undefined when more is needed. */
  const parse = (): [number, string, number] | undefined => {
    const endOfHead = buf.indexOf('\r\n\r\n');
    if (endOfHead < 0) return undefined;
    const head = buf.toString('latin1', 0, endOfHead);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
    if (!status) throw new Error(`not an HTTP response: ${head.slice(0, 100)}`);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
    const start = endOfHead + 4;
    if (length !== undefined) {
      const end = start + Number(length);
      return buf.length < end ? undefined : [status, buf.toString('utf8', start, end), end];
    }
    if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) throw new Error('response without Content-Length or chunked encoding');
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = parseInt(buf.toString('latin1', at, eol), 16);
      if (buf.length < eol + 2 + size + 2) return undefined;
      if (size === 0) return [status, Buffer.concat(parts).toString('utf8'), eol + 4];
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  };

  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    try {
      const r = parse();
      if (!r) return;
      buf = buf.subarray(r[2]);
      const w = waiting;
      waiting = undefined;
      w?.resolve({ status: r[0], body: r[1] });
    } catch (e) {
      fail(e as Error);
      socket.destroy();
    }
  });
  socket.on('error', (e) => fail(e));
  socket.on('close', () => fail(new Error('connection closed')));

  return {
    request(head, body) {
      if (failed) return Promise.reject(failed);
      if (waiting) return Promise.reject(new Error('one request at a time per connection'));
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        socket.write(Buffer.concat([Buffer.from(`${head}\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]));
      });
    },
    close() {
      socket.destroy();
    },
  };
}
