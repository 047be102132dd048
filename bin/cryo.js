#!/usr/bin/env node
// Entry point for `npx cryo`: the compiled CLI lives in dist/ (built by `npm ci` via "prepare").
import '../dist/src/cli/main.js';
