// Build step (`npm run build`, after tsc): writes the compact proto descriptor beside the
// compiled api/protos.js, so that processes load Envoy's types from JSON instead of parsing
// ~60 .proto files at start-up. Run as `node dist/api/protos-build.js` (any outDir works).
import { DESCRIPTOR_FILE, writeProtoDescriptor } from './protos.js';

const d = writeProtoDescriptor();
process.stdout.write(`proto descriptor: ${d.key.files.length} files → ${DESCRIPTOR_FILE}\n`);
