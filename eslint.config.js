// Lint rules for the whole tree, type-aware (typescript-eslint reads tsconfig.json through its project
// service). Formatting is Prettier's alone: eslint-config-prettier turns off every rule it would fight.
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "bench/results/", ".demo/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    rules: {
      // Control characters are what many of the gateway's checks look for (RFC 9110 §5.5 field values,
      // XML 1.0 §2.2 characters, ids fit for a log line): a regular expression naming them is intended.
      "no-control-regex": "off",
      // A parameter a signature requires but the body does not read (Express's error handler takes four).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // A variable a callback reads before its one assignment (a stop handler set up before the start).
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // node:test's describe/it return promises that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] }] },
      ],
    },
  },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
  prettier,
);
