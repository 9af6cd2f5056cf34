// A DeltaDiscoveryResponse read straight off the wire for the simulated proxies (ads-sim.ts):
// names, versions and each resource's packed bytes, nothing decoded further. Reading the format
// by hand keeps the simulated fleet's CPU (which shares a core with the control plane under
// test) to a fraction of what full protobuf decoding costs.

/** A delta response as the simulator reads it. */
export interface DeltaWire {
  type_url: string;
  system_version_info: string;
  nonce: string;
  removed_resources: string[];
  resources: { name: string; version: string; value: Uint8Array }[];
}

/** Just enough of the protobuf wire format to walk a message's fields. */
class WireReader {
  pos: number;
  /** Bounds of the field `next()` returned. */
  from = 0;
  to = 0;
  constructor(readonly buf: Buffer, from: number, readonly end: number) {
    this.pos = from;
  }

  varint(): number {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.buf[this.pos++]!;
      v += shift < 28 ? (b & 0x7f) << shift : (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  }

  /** The next field's number if it is length-delimited (its bounds in `from`/`to`); other
   *  fields are skipped. -1 at the end. */
  next(): number {
    while (this.pos < this.end) {
      const key = this.varint();
      const wire = key & 7;
      if (wire === 2) {
        const len = this.varint();
        this.from = this.pos;
        this.to = this.pos += len;
        return key >>> 3;
      }
      if (wire === 0) this.varint();
      else if (wire === 5) this.pos += 4;
      else if (wire === 1) this.pos += 8;
      else throw new Error(`unexpected wire type ${wire} in a DeltaDiscoveryResponse`);
    }
    return -1;
  }

  text(): string {
    return this.buf.toString('utf8', this.from, this.to);
  }
}

export function readDelta(buf: Buffer): DeltaWire {
  const out: DeltaWire = { type_url: '', system_version_info: '', nonce: '', removed_resources: [], resources: [] };
  const top = new WireReader(buf, 0, buf.length);
  for (let n = top.next(); n !== -1; n = top.next()) {
    if (n === 1) out.system_version_info = top.text();
    else if (n === 4) out.type_url = top.text();
    else if (n === 5) out.nonce = top.text();
    else if (n === 6) out.removed_resources.push(top.text());
    else if (n === 2) {
      // Resource: version 1, resource 2 (an Any, whose value is field 2), name 3.
      const r: DeltaWire['resources'][number] = { name: '', version: '', value: EMPTY };
      const res = new WireReader(buf, top.from, top.to);
      for (let m = res.next(); m !== -1; m = res.next()) {
        if (m === 3) r.name = res.text();
        else if (m === 1) r.version = res.text();
        else if (m === 2) {
          const any = new WireReader(buf, res.from, res.to);
          for (let k = any.next(); k !== -1; k = any.next()) if (k === 2) r.value = buf.subarray(any.from, any.to);
        }
      }
      out.resources.push(r);
    }
  }
  return out;
}
const EMPTY = new Uint8Array(0);

