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

-- A model an `infer` column index was built with cannot lose its row, by
-- infer_drop_model() or by DML on the table: the index would then answer
-- with another model of the same name, or none.
CREATE FUNCTION infer._index_using_model(model text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam
    WHERE a.amname = 'infer' AND ('model=' || model) = ANY (c.reloptions)
    ORDER BY 1 LIMIT 1
$$;

CREATE FUNCTION infer._models_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    idx text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        SELECT c.oid::regclass::text INTO idx FROM pg_class c JOIN pg_am a ON a.oid = c.relam
        WHERE a.amname = 'infer' AND EXISTS (
            SELECT 1 FROM unnest(c.reloptions) o WHERE o LIKE 'model=%') LIMIT 1;
        IF idx IS NOT NULL THEN
            RAISE EXCEPTION 'cannot truncate infer.models: index % uses one of its models', idx
                USING ERRCODE = '2BP01', HINT = format('DROP INDEX %s first.', idx);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' OR OLD.name IS DISTINCT FROM NEW.name THEN
        idx := infer._index_using_model(OLD.name);
        IF idx IS NOT NULL THEN
            RAISE EXCEPTION 'model "%" is used by index %', OLD.name, idx
                USING ERRCODE = '2BP01', HINT = format('DROP INDEX %s first.', idx);
        END IF;
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER models_in_use BEFORE DELETE OR UPDATE OF name ON infer.models
    FOR EACH ROW EXECUTE FUNCTION infer._models_guard();
CREATE TRIGGER models_in_use_truncate BEFORE TRUNCATE ON infer.models
    FOR EACH STATEMENT EXECUTE FUNCTION infer._models_guard();

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
-- embedding) or 'forward' (real FFN activations and the tokens they write;
-- needs inference weights); band NULL (every layer) or one band's layers
CREATE FUNCTION walk(prompt text, top int DEFAULT 10, model text DEFAULT NULL,
                     mode text DEFAULT NULL, band text DEFAULT NULL)
RETURNS TABLE (layer int, feature int, activation float8, concept text)
AS 'MODULE_PATHNAME', 'infer_walk'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Next-token prediction with the forward pass (extension/src/infer.c,
-- forward.c): the `top` most probable next tokens of the prompt.
CREATE FUNCTION infer(prompt text, top int DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (token text, probability float8, rank int)
AS 'MODULE_PATHNAME', 'infer_next_tokens'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---------------------------------------------------------------------------
-- Relations: templates the model is asked (describe() predictions) and
-- relation labels of features (describe()'s relation column)
-- ---------------------------------------------------------------------------

CREATE TABLE infer.relation_templates (
    model    text NOT NULL REFERENCES infer.models (name) ON DELETE CASCADE,
    relation text NOT NULL CHECK (relation <> ''),
    template text NOT NULL CHECK (position('{}' in template) > 0),
    PRIMARY KEY (model, relation)
);
SELECT pg_catalog.pg_extension_config_dump('infer.relation_templates', '');

CREATE TABLE infer.feature_label_data (
    model    text NOT NULL REFERENCES infer.models (name) ON DELETE CASCADE,
    layer    int NOT NULL,
    feature  int NOT NULL,
    sign     int NOT NULL CHECK (sign IN (-1, 1)),
    relation text NOT NULL,
    subjects int NOT NULL,
    PRIMARY KEY (model, layer, feature, sign, relation)
);
SELECT pg_catalog.pg_extension_config_dump('infer.feature_label_data', '');

-- A feature's relation label: firing with `sign` (of its activation), its
-- write token matched the object of that relation for `subjects` different
-- subjects (infer_label_relations).
CREATE VIEW infer.feature_labels AS
    SELECT model, layer, feature, sign, relation, subjects FROM infer.feature_label_data;

-- Each layer's band (syntax / knowledge / output), extension/src/describe.c.
CREATE FUNCTION infer_layer_bands(model text DEFAULT NULL, OUT layer int, OUT band text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'infer_layer_bands'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Registers (or replaces) the template describe() fills for a relation.
CREATE FUNCTION infer_add_relation(model text, relation text, template text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF model IS NULL OR relation IS NULL OR template IS NULL THEN
        RAISE EXCEPTION 'model, relation and template must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM infer.models m WHERE m.name = model) THEN
        RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = '42704';
    END IF;
    IF position('{}' in template) = 0 THEN
        RAISE EXCEPTION 'template "%" has no {} for the subject', template
            USING ERRCODE = '22023', HINT = 'For example: ''The capital of {} is''.';
    END IF;
    INSERT INTO infer.relation_templates AS t VALUES (model, relation, template)
    ON CONFLICT ON CONSTRAINT relation_templates_pkey DO UPDATE SET template = excluded.template;
END
$$;

-- Labels features with relations from facts: rows of (subject, relation,
-- object, template) from a query (or a table's name). Each filled template
-- is run forward; of the `top` (50) strongest FFN activations at the last
-- position in the layers of `band` ('knowledge'; NULL: every layer), a
-- feature whose write token (forward-mode walk()'s concept: the logit lens
-- of its down_proj column, signed like its activation) is the object's
-- first word counts for that subject; a feature counted for at least 2
-- different subjects of a relation is labelled with it. The relations'
-- templates are registered too. Returns, per relation of the facts, how
-- many features it labelled (a feature labelled for both signs counts
-- twice); earlier labels of these relations are replaced.
CREATE FUNCTION infer_label_relations(model text, facts text, top int DEFAULT 50,
                                      band text DEFAULT 'knowledge',
                                      OUT relation text, OUT features int)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
    mdl text := model;
    ntop int := top;
    wanted text := band;
    facts_sql text;
BEGIN
    IF mdl IS NULL OR facts IS NULL OR ntop IS NULL THEN
        RAISE EXCEPTION 'model, facts and top must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- a bare table name works like the regclass form
    facts_sql := 'SELECT subject::text AS subject, relation::text AS relation, '
                 'object::text AS object, template::text AS template FROM ('
                 || coalesce('SELECT * FROM ' || to_regclass(facts)::text, facts) || ') f';
    IF NOT EXISTS (SELECT 1 FROM infer.models m WHERE m.name = mdl) THEN
        RAISE EXCEPTION 'model "%" does not exist', mdl USING ERRCODE = '42704',
            HINT = 'Register it with infer_create_model(name, source, ''inference'').';
    END IF;
    IF ntop < 1 OR ntop > 10000 THEN
        RAISE EXCEPTION 'top must be between 1 and 10000, not %', ntop USING ERRCODE = '22023';
    END IF;
    BEGIN
        EXECUTE facts_sql || ' LIMIT 0';
    EXCEPTION WHEN undefined_column THEN
        RAISE EXCEPTION 'facts must have the columns subject, relation, object and template'
            USING ERRCODE = '42703', DETAIL = SQLERRM,
                  HINT = 'For example: (''France'', ''capital'', ''Paris'', ''The capital of {} is'').';
    END;
    CREATE TEMP TABLE IF NOT EXISTS pg_infer_label_hits
        (relation text, subject text, layer int, feature int, sign int) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS pg_infer_label_relations (relation text) ON COMMIT DROP;
    TRUNCATE pg_infer_label_hits, pg_infer_label_relations;
    FOR r IN EXECUTE facts_sql LOOP
        IF r.subject IS NULL OR r.relation IS NULL OR r.object IS NULL OR r.template IS NULL THEN
            RAISE EXCEPTION 'a fact has a NULL subject, relation, object or template: (%, %, %, %)',
                coalesce(r.subject, 'NULL'), coalesce(r.relation, 'NULL'),
                coalesce(r.object, 'NULL'), coalesce(r.template, 'NULL')
                USING ERRCODE = '22004';
        END IF;
        IF btrim(r.object) = '' OR btrim(r.subject) = '' THEN
            RAISE EXCEPTION 'a fact of relation "%" has an empty subject or object', r.relation
                USING ERRCODE = '22023';
        END IF;
        PERFORM infer_add_relation(mdl, r.relation, r.template);
        INSERT INTO pg_infer_label_relations VALUES (r.relation);
        INSERT INTO pg_infer_label_hits
        SELECT r.relation, r.subject, w.layer, w.feature, sign(w.activation)::int
        FROM walk(replace(r.template, '{}', r.subject), ntop, mdl, 'forward', wanted) w
        WHERE lower(w.concept) = lower(split_part(btrim(r.object), ' ', 1));
    END LOOP;
    DELETE FROM infer.feature_label_data d
    WHERE d.model = mdl AND d.relation IN (SELECT l.relation FROM pg_infer_label_relations l);
    INSERT INTO infer.feature_label_data
    SELECT mdl, h.layer, h.feature, h.sign, h.relation, count(DISTINCT h.subject)
    FROM pg_infer_label_hits h
    GROUP BY h.layer, h.feature, h.sign, h.relation
    HAVING count(DISTINCT h.subject) >= 2;
    RETURN QUERY
        SELECT l.relation, count(d.feature)::int
        FROM (SELECT DISTINCT l.relation FROM pg_infer_label_relations l) l
        LEFT JOIN infer.feature_label_data d ON d.model = mdl AND d.relation = l.relation
        GROUP BY l.relation ORDER BY l.relation;
END
$$;

-- The same from a table (or view) with columns subject, relation, object, template.
CREATE FUNCTION infer_label_relations(model text, facts regclass, top int DEFAULT 50,
                                      band text DEFAULT 'knowledge',
                                      OUT relation text, OUT features int)
RETURNS SETOF record
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM infer_label_relations(model, 'SELECT * FROM ' || facts::text, top, band)
$$;

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
-- STABLE: the result depends on infer.default_model and the registry, not
-- on the row; a volatile ORDER BY expression could never use an index.
-- STRICT: a NULL value has a NULL distance, which sorts last.
CREATE FUNCTION infer_distance(a text, b text) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_distance'
LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

CREATE FUNCTION infer_distance(a text, b text, model text) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_distance'
LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- The feature signatures (top-50 positive features) of many texts at once,
-- with the batched gate kernel (extension/src/similar.c); ord is 1-based.
CREATE FUNCTION infer_signatures(inputs text[], model text DEFAULT NULL)
RETURNS TABLE (ord int, layer int, feature int, score float8)
AS 'MODULE_PATHNAME', 'infer_signatures'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---------------------------------------------------------------------------
-- The `infer` index access method (extension/src/index_*.c)
-- ---------------------------------------------------------------------------

-- A gate scan per call: tell the planner it is expensive, so that
-- ORDER BY col <~> 'text' LIMIT k prefers an index over sorting every row.
ALTER FUNCTION infer_distance(text, text) COST 10000;
ALTER FUNCTION infer_distance(text, text, text) COST 10000;
ALTER FUNCTION similar_to(text, text, text) COST 10000;

CREATE OPERATOR <~> (
    LEFTARG = text, RIGHTARG = text, FUNCTION = infer_distance, COMMUTATOR = '<~>'
);

CREATE FUNCTION infer_am_handler(internal) RETURNS index_am_handler
AS 'MODULE_PATHNAME', 'infer_am_handler'
LANGUAGE C;

CREATE ACCESS METHOD infer TYPE INDEX HANDLER infer_am_handler;

CREATE OPERATOR CLASS text_infer_ops DEFAULT FOR TYPE text USING infer AS
    OPERATOR 1 <~> (text, text) FOR ORDER BY float_ops;

-- Models stored in index pages (extension/src/index_model.c):
--   CREATE INDEX countries ON infer._models USING infer (name)
--       WITH (source = '/models/countries.vindex');
-- registers model "countries", loaded from the index from then on. The
-- table's rows are not used.
CREATE TABLE infer._models (name text);
