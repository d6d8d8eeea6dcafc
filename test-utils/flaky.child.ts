/**
 * Child of child.pure.test.ts: fails as argv[2] says. 'die': prints a progress line, then kills itself (SIGKILL);
 * 'exit1': exits with status 1 after a message on stderr; 'unsettled': awaits a promise nothing resolves (Node
 * exits with status 13 and prints nothing, as the Node wasm-threads start once did).
 */
const mode = process.argv[2];
if (mode === 'die') {
  console.log('PHASE about to die');
  process.kill(process.pid, 'SIGKILL');
} else if (mode === 'unsettled') {
  await new Promise(() => {});
} else {
  console.error('exit1: failing on purpose');
  process.exit(1);
}
