// cryo's version, alone in a module: bin/cryo.js answers `--version` from it without loading
// commander or anything else (start-up: within 1.5x of `node -e 0`).
export const VERSION = '0.1.0';
