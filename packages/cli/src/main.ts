#!/usr/bin/env node
console.log("pglite-infer: commands coming")
