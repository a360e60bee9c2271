import react from "@vitejs/plugin-react";
import { resolve } from "node:path";
import { defineConfig } from "vite";

// Two pages: the dashboard at / and GraphiQL at /graphql (its own bundle, so the dashboard
// never loads GraphiQL's editor). coinql serves dist/ itself; nothing is fetched from a CDN.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      input: {
        app: resolve(__dirname, "index.html"),
        graphiql: resolve(__dirname, "graphiql.html"),
      },
    },
  },
  server: {
    proxy: {
      "/graphql": { target: "http://127.0.0.1:8000", ws: true },
      "/reports": "http://127.0.0.1:8000",
    },
  },
  test: { include: ["src/**/*.test.ts"] },
});
