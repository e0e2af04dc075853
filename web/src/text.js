// The JS reference tokenizer of text features (features/text.py is the definition; the Python
// reference is modules.text.tokenize). The preprocessing spec's `tokenize` step carries the
// definition: ASCII-only lower-casing (A-Z -> a-z, nothing else), a split on runs of the
// `separators` regex (an explicit ASCII class: the same set in RE2, Python and JS), empty tokens
// dropped, the first `max_tokens` kept, padded with `padding` ("").
//
// JS strings are UTF-16, Transform's are UTF-8 bytes: the separators and A-Z are ASCII, and
// neither a UTF-16 surrogate nor a byte of a multi-byte UTF-8 character is ASCII, so both split
// at the same places.

const ASCII_UPPER = /[A-Z]+/g;

// The text's tokens per the spec's tokenize step: an array of exactly step.max_tokens strings.
export function tokenize(text, step) {
  if (step.lowercase !== 'ascii') throw new Error(`tokenize: unknown lowercase rule '${step.lowercase}'`);
  const lowered = String(text).replace(ASCII_UPPER, (m) => m.toLowerCase());
  const tokens = lowered.split(new RegExp(step.separators)).filter((t) => t !== '').slice(0, step.max_tokens);
  while (tokens.length < step.max_tokens) tokens.push(step.padding);
  return tokens;
}

// The spec's tokenize step of the feature that an input (`<name>_tokens`, `tokens_of`) belongs to.
export function tokenizeStep(spec, input) {
  const feature = spec.features.find((f) => f.name === input.feature);
  const step = feature && feature.steps.find((s) => s.op === 'tokenize');
  if (!step) throw new Error(`input ${input.name}: no tokenize step for feature ${input.feature}`);
  return step;
}

// Token ids as Transform computes them (the vocabulary step: 0 padding, 1 + index, 1 + len(keys)
// for an unseen token): the check that this tokenizer reproduces Transform's output.
export function tokenIds(tokens, vocabularyStep) {
  const lookup = new Map(vocabularyStep.keys.map((k, i) => [k, i + 1]));
  return tokens.map((t) => (t === '' ? 0 : lookup.get(t) ?? vocabularyStep.keys.length + 1));
}

// Whether a raw column is the text of a tokenized feature (the demo page shows a textarea).
export function isTextColumn(spec, column) {
  return spec.features.some((f) => f.source.column === column && f.steps.some((s) => s.op === 'tokenize'));
}
