// The rooms of the design and what each may import (docs/architecture.md#code-layout). Checked
// by test/layers.test.ts in the test command: an import across a line fails CI.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'lower-room-imports-agent',
      comment: 'drivers/, store/ and hardware/ never import from agent/: the agent composes them',
      severity: 'error',
      from: { path: '^(drivers|store|hardware)/' },
      to: { path: '^agent/' },
    },
    {
      name: 'store-imports-drivers',
      comment: 'the store knows nothing of the wire',
      severity: 'error',
      from: { path: '^store/' },
      to: { path: '^drivers/' },
    },
    {
      name: 'driver-imports-store',
      comment: 'a driver does I/O with a peer and knows nothing of the store',
      severity: 'error',
      from: { path: '^drivers/' },
      to: { path: '^store/' },
    },
    {
      name: 'product-imports-scripts',
      comment: 'the product never imports from scripts/ (benches, tools, doc generators)',
      severity: 'error',
      from: { path: '^(agent|drivers|store|hardware)/' },
      to: { path: '^scripts/' },
    },
    {
      name: 'product-imports-test',
      comment: 'the product never imports test helpers (benches may)',
      severity: 'error',
      from: { path: '^(agent|drivers|store|hardware)/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
