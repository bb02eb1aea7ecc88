-- pg_infer 0.1.0: install script.
-- Each SQL function names the C function that implements it (extension/src/).

\echo Use "CREATE EXTENSION pg_infer" to load this file. \quit

-- Version of the loaded C module (extension/src/pg_infer.c).
CREATE FUNCTION infer_version() RETURNS text
AS 'MODULE_PATHNAME', 'infer_version'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Token ids of `input` under a HuggingFace tokenizer.json, computed by the
-- host's tokenizer (extension/src/tokenize.c -> host hook "tokenize").
CREATE FUNCTION infer_tokenize(input text, tokenizer_json text,
                               add_special_tokens boolean DEFAULT false)
RETURNS int[]
AS 'MODULE_PATHNAME', 'infer_tokenize'
LANGUAGE C STABLE STRICT PARALLEL UNSAFE;
