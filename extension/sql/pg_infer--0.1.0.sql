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

-- ---------------------------------------------------------------------------
-- Model registry (extension/src/model.c)
-- ---------------------------------------------------------------------------

CREATE SCHEMA infer;

-- The models that exist in this database. Loaded data lives in each
-- backend's memory and is (re)loaded from `source` on first use.
CREATE TABLE infer.models (
    name          text PRIMARY KEY,
    source        text NOT NULL,
    extract_level text NOT NULL CHECK (extract_level IN ('browse', 'inference', 'all')),
    architecture  text NOT NULL,
    layers        int NOT NULL,
    hidden        int NOT NULL,
    features      int NOT NULL,
    vocab         int NOT NULL,
    dtype         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('infer.models', '');

CREATE FUNCTION infer_create_model(name text, source text, extract_level text DEFAULT 'browse')
RETURNS text
AS 'MODULE_PATHNAME', 'infer_create_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_drop_model(name text) RETURNS void
AS 'MODULE_PATHNAME', 'infer_drop_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- What this backend holds in memory.
CREATE FUNCTION infer_loaded_models(OUT name text, OUT bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'infer_loaded_models'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_models(
    OUT name text, OUT source text, OUT architecture text, OUT layers int, OUT hidden int,
    OUT features int, OUT vocab int, OUT dtype text, OUT extract_level text,
    OUT bytes bigint, OUT loaded boolean)
RETURNS SETOF record
LANGUAGE sql VOLATILE
AS $$
    SELECT m.name, m.source, m.architecture, m.layers, m.hidden, m.features, m.vocab,
           m.dtype, m.extract_level, coalesce(l.bytes, 0), l.name IS NOT NULL
    FROM infer.models m LEFT JOIN infer_loaded_models() l ON l.name = m.name
    ORDER BY m.name
$$;

-- ---------------------------------------------------------------------------
-- Knowledge queries
-- ---------------------------------------------------------------------------

-- extension/src/walk.c; mode NULL/'embedding' (gate KNN of the token's
-- embedding) or 'forward' (real FFN activations; needs inference weights)
CREATE FUNCTION walk(prompt text, top int DEFAULT 10, model text DEFAULT NULL,
                     mode text DEFAULT NULL)
RETURNS TABLE (layer int, feature int, activation float8, concept text)
AS 'MODULE_PATHNAME', 'infer_walk'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Next-token prediction with the forward pass (extension/src/infer.c,
-- forward.c): the `top` most probable next tokens of the prompt.
CREATE FUNCTION infer(prompt text, top int DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (token text, probability float8, rank int)
AS 'MODULE_PATHNAME', 'infer_next_tokens'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- extension/src/describe.c
CREATE FUNCTION describe(entity text, model text DEFAULT NULL, threshold float8 DEFAULT NULL)
RETURNS TABLE (relation text, target text, confidence float8, layer int)
AS 'MODULE_PATHNAME', 'infer_describe'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION implies(subject text, object text, model text DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'infer_implies'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- extension/src/similar.c
CREATE FUNCTION similar_to(a text, b text, model text DEFAULT NULL) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_similar_to'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- 1 / (1 + similar_to(a, b)) under infer.default_model: the <~> distance.
CREATE FUNCTION infer_distance(a text, b text) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_distance'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_distance(a text, b text, model text) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_distance'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The feature signatures (top-50 positive features) of many texts at once,
-- with the batched gate kernel (extension/src/similar.c); ord is 1-based.
CREATE FUNCTION infer_signatures(inputs text[], model text DEFAULT NULL)
RETURNS TABLE (ord int, layer int, feature int, score float8)
AS 'MODULE_PATHNAME', 'infer_signatures'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
