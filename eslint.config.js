import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { fixtures } from './eslint.fixtures.js';
import { EXEC_WITH_A_SHELL, layering } from './eslint.layers.js';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'scripts/npm-stubs/', '.stryker-tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { paths: EXEC_WITH_A_SHELL }],
    },
  },
  { ...tseslint.configs.disableTypeChecked, files: ['**/*.js', '**/*.cjs', '**/*.mjs'] },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  // ARCHITECTURE.md's layers: nothing imports upward, production never imports test/.
  ...layering(),
  // Test files make their fixtures in tests and hooks, not while they are collected.
  fixtures(),
);
