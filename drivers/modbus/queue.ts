/**
 * A bounded, strictly serial transaction queue: one request on a bus at a time, in order.
 * A full queue refuses at once (counted) rather than growing: a slow bus must not turn into
 * unbounded memory. Used by both the RTU master and the TCP client.
 */
export class SerialQueue<Req, Res> {
  private readonly items: { req: Req; resolve: (r: Res) => void }[] = [];
  private busy = false;
  refused = 0;

  constructor(
    private readonly max: number,
    private readonly run: (req: Req) => Promise<Res>,
    private readonly full: (req: Req) => Res,
    private readonly failed: (req: Req, e: unknown) => Res = full,
  ) {}

  get length(): number {
    return this.items.length;
  }

  push(req: Req): Promise<Res> {
    if (this.items.length >= this.max) {
      this.refused++;
      return Promise.resolve(this.full(req));
    }
    return new Promise((resolve) => {
      this.items.push({ req, resolve });
      void this.pump();
    });
  }

  /** Resolves everything still queued with `res` (shutdown). */
  drain(res: (req: Req) => Res): void {
    for (const it of this.items.splice(0)) it.resolve(res(it.req));
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.items.length > 0) {
        const it = this.items.shift()!;
        try {
          it.resolve(await this.run(it.req));
        } catch (e) {
          // A job that throws must not wedge the bus: it resolves as a failure and the queue goes on.
          it.resolve(this.failed(it.req, e));
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
