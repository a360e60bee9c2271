import type { CodegenConfig } from "@graphql-codegen/cli";

// Operations are typed from the exported schema (../schema.graphql, `make schema`).
const config: CodegenConfig = {
  schema: "../schema.graphql",
  documents: ["src/**/*.ts", "src/**/*.tsx", "!src/gql/**/*"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: {
          DateTime: "string",
          Decimal: "string",
          FloatArray: "(number | null)[]",
          TimestampArray: "number[]",
          JSON: "unknown",
          Upload: "File",
        },
      },
    },
  },
};
export default config;
