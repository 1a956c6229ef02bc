import { defineConfig } from "vite";

// The dashboard is served by the binary at /_/ from ../dist, which is committed: CI rebuilds it
// from this source and fails when the result differs, so the build must be deterministic (no
// timestamps, no absolute paths, content-hashed names only).
export default defineConfig({
  base: "/_/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    // The budget is 300 KB of *gzipped* JavaScript (checked by e2e/shell.test.mjs); minified
    // size runs about 3x that.
    chunkSizeWarningLimit: 900,
  },
  server: {
    // `npm run dev` serves the source with the API of a running Plinth (PLINTH_URL).
    proxy: { "/api": process.env.PLINTH_URL ?? "http://127.0.0.1:8090" },
  },
});
