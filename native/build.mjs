// npm's install step: builds the native addon (native/: SO_ORIGINAL_DST, and sockets made inside
// pods' network namespaces) that `weft proxy --capture` and `--mode ambient` need on Linux. A failed build does not fail the install — the local mesh does not need it —
// but says plainly what is missing; both modes then refuse to start with the same reason.
import { spawnSync } from 'node:child_process';

if (process.platform !== 'linux') {
  console.warn('weft: skipping the native capture addon (SO_ORIGINAL_DST is Linux-only); `weft proxy --capture` and `--mode ambient` are unavailable here.');
  process.exit(0);
}
const result = spawnSync('npm', ['run', '--silent', 'build:native'], { stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    'weft: the native capture addon did not build (it needs python3, make and g++); ' +
      'the local mesh works without it, `weft proxy --capture` and `--mode ambient` do not. Fix the toolchain and run `npm run build:native`.',
  );
}
