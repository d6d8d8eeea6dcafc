/**
 * Child of child.pure.test.ts: behaves as argv[2] says. 'die-once <file>': kills itself (SIGKILL, nothing printed)
 * unless <file> exists, which it creates first, so the second run prints a result; 'die': always killed;
 * 'exit1': exits with status 1 without a result (an ordinary failure, not retried).
 */
import { existsSync, writeFileSync } from 'node:fs';

const [mode, marker] = process.argv.slice(2);
if (mode === 'die-once' && marker) {
  if (!existsSync(marker)) {
    writeFileSync(marker, '');
    process.kill(process.pid, 'SIGKILL');
  }
  console.log('RESULT ' + JSON.stringify({ ok: true }));
} else if (mode === 'die') {
  console.log('PHASE about to die');
  process.kill(process.pid, 'SIGKILL');
} else {
  console.error('exit1: failing on purpose');
  process.exit(1);
}
