#!/usr/bin/env node
// The JS reference tokenizer (web/src/text.js) on its own: reads {"tokenize": <spec tokenize step>,
// "vocabulary": <spec vocabulary step, optional>, "texts": [...]} and prints {"tokens": [[...]],
// "ids": [[...]]} (ids only with a vocabulary), for comparison with Transform and the Python reference.
import {readFile} from 'node:fs/promises';

import {tokenIds, tokenize} from '../src/text.js';

const {tokenize: step, vocabulary, texts} = JSON.parse(await readFile(process.argv[2], 'utf8'));
const tokens = texts.map((t) => tokenize(t, step));
const out = {tokens};
if (vocabulary) out.ids = tokens.map((t) => tokenIds(t, vocabulary));
process.stdout.write(`${JSON.stringify(out)}\n`);
