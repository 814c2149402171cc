import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// One config for the build (web/dist) and the unit tests (web/test).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
