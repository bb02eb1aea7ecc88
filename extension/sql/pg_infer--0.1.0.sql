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
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- as pg_infer's registry: where the model is computed ('local': here;
    -- 'remote': by the model server at server_url)
    backend       text NOT NULL DEFAULT 'local' CHECK (backend IN ('local', 'remote')),
    server_url    text
);
SELECT pg_catalog.pg_extension_config_dump('infer.models', '');

-- extract_level NULL means 'browse' (pg_infer's signature: DEFAULT NULL)
CREATE FUNCTION infer_create_model(model_name text, source text,
                                   extract_level text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'infer_create_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_drop_model(model_name text) RETURNS text
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

-- Vindex files written into <infer.data_directory>/<model>.vindex/ from
-- SQL, for db.infer.createModel(bytes) where the API has no file system
-- handle (a PGliteWorker client): extension/src/store.c. They write files:
-- superuser only.
CREATE FUNCTION infer._store_model_file(model text, file text, data bytea,
                                        replace boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'infer_store_model_file'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION infer._remove_model_files(model text) RETURNS void
AS 'MODULE_PATHNAME', 'infer_remove_model_files'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION infer._store_model_file(text, text, bytea, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION infer._remove_model_files(text) FROM PUBLIC;

-- Remote models: served by a model server (`pglite-infer serve`,
-- extension/src/remote.c, docs/remote-models.md). The row has backend
-- 'remote', server_url, and the server's name for the model in source.
CREATE FUNCTION infer_create_model_remote(model_name text, server_url text) RETURNS text
AS 'MODULE_PATHNAME', 'infer_create_model_remote'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_create_models_remote(model_names text[], server_url text) RETURNS int
AS 'MODULE_PATHNAME', 'infer_create_models_remote'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The first model server that answers: infer.default_server_url, well-known
-- Unix sockets, http://127.0.0.1:8080; NULL when none.
CREATE FUNCTION infer_detect_server() RETURNS text
AS 'MODULE_PATHNAME', 'infer_detect_server'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_server_stats(model_name text)
RETURNS TABLE (stat_name text, stat_value text)
AS 'MODULE_PATHNAME', 'infer_server_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- What this backend holds in memory.
-- bytes: in the WASM heap; compute_bytes: held by a host compute backend.
CREATE FUNCTION infer_loaded_models(OUT name text, OUT bytes bigint, OUT compute_bytes bigint,
                                    OUT owner text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'infer_loaded_models'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The registry with what this backend holds. The first columns are
-- pg_infer's (model_name ... registered_at, backend, server_url); the rest
-- are pglite-infer's own, `name`, `layers`, `hidden` and `vocab` included
-- (the same values under the names earlier releases used).
CREATE FUNCTION infer_models()
RETURNS TABLE (
    model_name text, vindex_path text, source text, extract_level text,
    num_layers int, hidden_size int, vocab_size int,
    registered_at timestamptz, backend text, server_url text,
    architecture text, features int, dtype text, bytes bigint,
    loaded boolean, name text, layers int, hidden int, vocab int,
    compute text, compute_bytes bigint,
    heap_bytes bigint, backend_bytes bigint, weights text)
LANGUAGE sql VOLATILE
AS $$
    SELECT m.name,
           -- where the vindex is read from: a relative source lives in
           -- infer.data_directory under PGDATA
           CASE WHEN m.backend = 'remote' THEN NULL
                WHEN m.source ~ '^(/|[a-z][a-z0-9+.-]*:)' THEN m.source
                ELSE current_setting('data_directory') || '/' ||
                     current_setting('infer.data_directory') || '/' || m.source END,
           m.source, m.extract_level, m.layers, m.hidden, m.vocab, m.created_at,
           m.backend, m.server_url, m.architecture, m.features, m.dtype,
           coalesce(l.bytes, 0), l.name IS NOT NULL, m.name, m.layers, m.hidden, m.vocab,
           -- what computes its gate passes in this session ('auto' shows 'wasm'; on a
           -- hardware GPU its passes run on webgpu, and compute_bytes is what it holds);
           -- a backend-owned model is served by the backend that owns it
           CASE WHEN m.backend = 'remote' THEN 'remote'
                WHEN l.owner = 'onnx' THEN 'onnx'
                WHEN current_setting('infer.compute', true) IN ('onnx', 'webgpu')
                THEN current_setting('infer.compute', true) ELSE 'wasm' END,
           coalesce(l.compute_bytes, 0),
           -- heap_bytes: what it holds in the WASM heap (infer.max_memory counts
           -- these); backend_bytes: what a compute backend holds; weights: where
           -- its gate and forward matrices are ('heap', 'onnx'; NULL: not loaded)
           coalesce(l.bytes, 0), coalesce(l.compute_bytes, 0),
           CASE WHEN m.backend = 'remote' THEN 'remote' ELSE l.owner END
    FROM infer.models m LEFT JOIN infer_loaded_models() l ON l.name = m.name
    ORDER BY m.name
$$;

-- Loads a model (and its entities' signatures) ahead of the first query
-- (extension/src/model.c).
CREATE FUNCTION infer_warmup(model_name text, entities text[] DEFAULT NULL) RETURNS text
AS 'MODULE_PATHNAME', 'infer_warmup'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- What pg_infer did in this backend, per model and function
-- (extension/src/stats.c).
CREATE FUNCTION infer_stats(model text DEFAULT NULL)
RETURNS TABLE (model text, function text, calls bigint, rows bigint, total_ms float8,
               cache_hits bigint, cache_misses bigint, heap_bytes bigint, compute_bytes bigint)
AS 'MODULE_PATHNAME', 'infer_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_stats_reset() RETURNS void
AS 'MODULE_PATHNAME', 'infer_stats_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---------------------------------------------------------------------------
-- Knowledge queries
-- ---------------------------------------------------------------------------

-- extension/src/walk.c; mode NULL/'embedding' (gate KNN of the token's
-- embedding) or 'forward' (real FFN activations and the tokens they write;
-- needs inference weights); band NULL (every layer) or one band's layers;
-- per_layer: `top` per layer (pg_infer's meaning) instead of `top` in all
CREATE FUNCTION walk(prompt text, top int DEFAULT 10, model text DEFAULT NULL,
                     mode text DEFAULT NULL, band text DEFAULT NULL,
                     per_layer boolean DEFAULT false)
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

-- A relation may have several templates; describe() asks each and combines
-- the answers by weight (extension/src/predict.c). infer_score_templates
-- sets weight to a template's precision@1 on given facts (and `precision_at_1`,
-- `facts` to what it measured); infer_add_relation gives weight 1.
CREATE TABLE infer.relation_templates (
    model     text NOT NULL REFERENCES infer.models (name) ON DELETE CASCADE,
    relation  text NOT NULL CHECK (relation <> ''),
    template  text NOT NULL CHECK (position('{}' in template) > 0),
    weight    float8 NOT NULL DEFAULT 1 CHECK (weight > 0),
    precision_at_1 float8 CHECK (precision_at_1 BETWEEN 0 AND 1),
    facts     int,
    PRIMARY KEY (model, relation, template)
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

-- Every template of every relation, one row each (infer.relation_templates).
CREATE VIEW infer.templates AS
    SELECT model, relation, template, weight, precision_at_1, facts
    FROM infer.relation_templates ORDER BY model, relation, weight DESC, template;

-- Registers the templates describe() fills for a relation, replacing the
-- relation's earlier ones; each gets weight 1.
CREATE FUNCTION infer_add_relation(model text, relation text, templates text[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t text;
BEGIN
    IF model IS NULL OR relation IS NULL OR templates IS NULL THEN
        RAISE EXCEPTION 'model, relation and template must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM infer.models m WHERE m.name = model) THEN
        RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = '42704';
    END IF;
    IF cardinality(templates) = 0 THEN
        RAISE EXCEPTION 'relation "%" needs at least one template', relation USING ERRCODE = '22023';
    END IF;
    FOREACH t IN ARRAY templates LOOP
        IF t IS NULL THEN
            RAISE EXCEPTION 'a template of relation "%" is NULL', relation USING ERRCODE = '22004';
        END IF;
        IF position('{}' in t) = 0 THEN
            RAISE EXCEPTION 'template "%" has no {} for the subject', t
                USING ERRCODE = '22023', HINT = 'For example: ''The capital of {} is''.';
        END IF;
    END LOOP;
    DELETE FROM infer.relation_templates r WHERE r.model = $1 AND r.relation = $2;
    INSERT INTO infer.relation_templates (model, relation, template)
    SELECT DISTINCT $1, $2, u FROM unnest(templates) u;
END
$$;

-- One template: the relation's only one from now on.
CREATE FUNCTION infer_add_relation(model text, relation text, template text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT infer_add_relation(model, relation, ARRAY[template])
$$;

-- The greedy answer a prompt's continuation gives, as describe() reads it
-- (extension/src/predict.c: the stop rule), and its probability.
CREATE FUNCTION infer_answer(prompt text, model text DEFAULT NULL,
                             OUT answer text, OUT probability float8)
AS 'MODULE_PATHNAME', 'infer_answer'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Scores templates on facts (subject, relation, object, template): for each
-- (relation, template), the share of its facts whose greedy answer
-- (infer_answer of the filled template) is the object, case-insensitively
-- (precision@1 of the whole answer). A relation's templates with precision@1
-- >= min_precision replace its registered ones, with weight = precision@1;
-- when none reaches it, its best one is kept (so describe() still answers).
-- Returns every scored template, weight 0 for the ones left out.
CREATE FUNCTION infer_score_templates(model text, facts text, min_precision float8 DEFAULT 0.5,
                                      OUT relation text, OUT template text, OUT scored int,
                                      OUT precision_at_1 float8, OUT weight float8)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    mdl text := model;
    facts_sql text;
    r record;
BEGIN
    IF mdl IS NULL OR $2 IS NULL OR min_precision IS NULL THEN
        RAISE EXCEPTION 'model, facts and min_precision must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT (min_precision BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'min_precision must be between 0 and 1, not %', min_precision
            USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM infer.models m WHERE m.name = mdl) THEN
        RAISE EXCEPTION 'model "%" does not exist', mdl USING ERRCODE = '42704';
    END IF;
    facts_sql := 'SELECT subject::text AS subject, relation::text AS relation, '
                 'object::text AS object, template::text AS template FROM ('
                 || coalesce('SELECT * FROM ' || to_regclass($2)::text, $2) || ') f';
    CREATE TEMP TABLE IF NOT EXISTS pg_infer_template_hits
        (relation text, template text, ok boolean) ON COMMIT DROP;
    TRUNCATE pg_infer_template_hits;
    FOR r IN EXECUTE facts_sql LOOP
        IF r.subject IS NULL OR r.relation IS NULL OR r.object IS NULL OR r.template IS NULL THEN
            RAISE EXCEPTION 'a fact has a NULL subject, relation, object or template: (%, %, %, %)',
                coalesce(r.subject, 'NULL'), coalesce(r.relation, 'NULL'),
                coalesce(r.object, 'NULL'), coalesce(r.template, 'NULL')
                USING ERRCODE = '22004';
        END IF;
        IF position('{}' in r.template) = 0 THEN
            RAISE EXCEPTION 'template "%" has no {} for the subject', r.template
                USING ERRCODE = '22023';
        END IF;
        INSERT INTO pg_infer_template_hits
        SELECT r.relation, r.template,
               lower(coalesce(a.answer, '')) = lower(btrim(r.object))
        FROM infer_answer(replace(r.template, '{}', r.subject), mdl) a;
    END LOOP;
    CREATE TEMP TABLE IF NOT EXISTS pg_infer_template_scores
        (relation text, template text, facts int, precision_at_1 float8, weight float8) ON COMMIT DROP;
    TRUNCATE pg_infer_template_scores;
    INSERT INTO pg_infer_template_scores
    SELECT h.relation, h.template, count(*)::int, avg(h.ok::int)::float8, 0
    FROM pg_infer_template_hits h GROUP BY h.relation, h.template;
    -- kept: at or above the floor, or a relation's best when none is
    UPDATE pg_infer_template_scores s SET weight = s.precision_at_1
    WHERE s.precision_at_1 > 0 AND (s.precision_at_1 >= min_precision OR NOT EXISTS (
        SELECT 1 FROM pg_infer_template_scores o
        WHERE o.relation = s.relation AND (o.precision_at_1 >= min_precision
              OR o.precision_at_1 > s.precision_at_1 OR (o.precision_at_1 = s.precision_at_1 AND o.template < s.template))));
    DELETE FROM infer.relation_templates t
    WHERE t.model = mdl AND t.relation IN (SELECT s.relation FROM pg_infer_template_scores s);
    INSERT INTO infer.relation_templates (model, relation, template, weight, precision_at_1, facts)
    SELECT mdl, s.relation, s.template, s.weight, s.precision_at_1, s.facts
    FROM pg_infer_template_scores s WHERE s.weight > 0;
    RETURN QUERY SELECT s.relation, s.template, s.facts, s.precision_at_1, s.weight
        FROM pg_infer_template_scores s ORDER BY s.relation, s.weight DESC, s.template;
END
$$;

CREATE FUNCTION infer_score_templates(model text, facts regclass, min_precision float8 DEFAULT 0.5,
                                      OUT relation text, OUT template text, OUT scored int,
                                      OUT precision_at_1 float8, OUT weight float8)
RETURNS SETOF record
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM infer_score_templates(model, 'SELECT * FROM ' || facts::text, min_precision)
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
        IF position('{}' in r.template) = 0 THEN
            RAISE EXCEPTION 'template "%" has no {} for the subject', r.template
                USING ERRCODE = '22023', HINT = 'For example: ''The capital of {} is''.';
        END IF;
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
    -- the facts' templates, scored on the facts: those that work are registered
    PERFORM infer_score_templates(mdl, facts_sql);
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

-- implies(left, right) with infer.default_model: the @> operator on text.
CREATE FUNCTION infer_implies_op("left" text, "right" text) RETURNS boolean
AS 'MODULE_PATHNAME', 'infer_implies'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Exploration (extension/src/explore.c, show.c); see docs/sql-reference.md.
CREATE FUNCTION describe_layers(entity text, model text DEFAULT NULL,
                                threshold float8 DEFAULT NULL)
RETURNS TABLE (layer int, feature int, target text, gate_score float8, also text)
AS 'MODULE_PATHNAME', 'infer_describe_layers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION nearest_to(entity text, layer int, top int DEFAULT 20, model text DEFAULT NULL)
RETURNS TABLE (feature int, token text, score float8, also text)
AS 'MODULE_PATHNAME', 'infer_nearest_to'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_explain_walk(prompt text, top int DEFAULT 5, model text DEFAULT NULL)
RETURNS TABLE (layer int, band text, feature int, activation float8, token text, also text)
AS 'MODULE_PATHNAME', 'infer_explain_walk'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_show_layers(model text DEFAULT NULL)
RETURNS TABLE (layer int, band text, num_features int)
AS 'MODULE_PATHNAME', 'infer_show_layers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_show_features(layer int, filter text DEFAULT NULL,
                                    min_score float8 DEFAULT NULL, top int DEFAULT 50,
                                    model text DEFAULT NULL)
RETURNS TABLE (feature int, token text, score float8, also text, label text)
AS 'MODULE_PATHNAME', 'infer_show_features'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION infer_show_relations(model text DEFAULT NULL)
RETURNS TABLE (relation text, count int, max_score float8, layers text, examples text)
AS 'MODULE_PATHNAME', 'infer_show_relations'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Feature by feature (one layer, or all), where two models differ.
CREATE FUNCTION infer_diff(model_a text, model_b text, layer int DEFAULT NULL,
                           top int DEFAULT 20)
RETURNS TABLE (layer int, feature int, token_a text, token_b text, score_a float8,
               score_b float8, status text)
AS 'MODULE_PATHNAME', 'infer_diff_layers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- What two models say about one entity: describe(entity) in each, matched
-- on relation and case-insensitive target: 'modified' (confidences more
-- than 0.01 apart), 'removed' (only model_a) or 'added' (only model_b);
-- rows both models agree on are left out. Largest |confidence_b -
-- confidence_a| first (a missing side counts 0).
CREATE FUNCTION infer_diff(model_a text, model_b text, entity text, top int DEFAULT 20)
RETURNS TABLE (relation text, target text, confidence_a float8, confidence_b float8,
               status text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF model_a IS NULL OR model_b IS NULL OR entity IS NULL OR top IS NULL THEN
        RAISE EXCEPTION 'model_a, model_b, entity and top must not be NULL'
            USING ERRCODE = '22004';
    END IF;
    IF top < 1 THEN
        RAISE EXCEPTION 'top must be at least 1, not %', top USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH a AS (
        SELECT d.relation, lower(d.target) AS k, min(d.target) AS target, max(d.confidence) AS c
        FROM describe(entity, model_a) d GROUP BY 1, 2),
    b AS (
        SELECT d.relation, lower(d.target) AS k, min(d.target) AS target, max(d.confidence) AS c
        FROM describe(entity, model_b) d GROUP BY 1, 2)
    SELECT coalesce(a.relation, b.relation), coalesce(a.target, b.target), a.c, b.c,
           CASE WHEN a.k IS NULL THEN 'added' WHEN b.k IS NULL THEN 'removed'
                ELSE 'modified' END
    FROM a FULL JOIN b ON a.relation = b.relation AND a.k = b.k
    WHERE a.k IS NULL OR b.k IS NULL OR abs(a.c - b.c) > 0.01
    ORDER BY abs(coalesce(b.c, 0) - coalesce(a.c, 0)) DESC,
             coalesce(a.relation, b.relation), coalesce(a.k, b.k)
    LIMIT top;
END
$$;

-- extension/src/similar.c
CREATE FUNCTION similar_to(a text, b text, model text DEFAULT NULL) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_similar_to'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- similar_to(a, b) with infer.default_model: the <~ operator (higher =
-- more similar). STABLE STRICT for the same reasons as infer_distance.
CREATE FUNCTION infer_similarity(a text, b text) RETURNS float8
AS 'MODULE_PATHNAME', 'infer_similar_to'
LANGUAGE C STABLE STRICT PARALLEL UNSAFE;

-- similar_to(candidate, query, model) of every candidate, in one batched
-- signature pass; NULL candidates score NULL.
CREATE FUNCTION similar_to_many(candidates text[], query text, model text DEFAULT NULL)
RETURNS float8[]
AS 'MODULE_PATHNAME', 'infer_similar_to_many'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The text's embedding as similar_to sees it (mean input embedding):
-- hidden_size reals. pg_infer_vector's infer_embed() returns it as vector.
-- STABLE, like infer_distance: ORDER BY embed <=> infer_embed('q') can
-- then use a vector index.
CREATE FUNCTION infer_embedding(input text, model text DEFAULT NULL) RETURNS real[]
AS 'MODULE_PATHNAME', 'infer_embedding'
LANGUAGE C STABLE PARALLEL UNSAFE;

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

-- For each token, its specificity weight and the dot products of its
-- signature vector with the query's signature tokens' vectors: what an index
-- scan ranks stored signatures with (a column index on a remote model asks
-- its server for them).
CREATE FUNCTION infer_signature_dots(query text, tokens int[], model text DEFAULT NULL)
RETURNS TABLE (token int, weight real, dots real[])
AS 'MODULE_PATHNAME', 'infer_signature_dots'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- ---------------------------------------------------------------------------
-- The `infer` index access method (extension/src/index_*.c)
-- ---------------------------------------------------------------------------

-- A gate scan per call: tell the planner it is expensive, so that
-- ORDER BY col <~> 'text' LIMIT k prefers an index over sorting every row.
ALTER FUNCTION infer_distance(text, text) COST 10000;
ALTER FUNCTION infer_distance(text, text, text) COST 10000;
ALTER FUNCTION similar_to(text, text, text) COST 10000;
ALTER FUNCTION infer_similarity(text, text) COST 10000;
ALTER FUNCTION infer_implies_op(text, text) COST 10000;

CREATE OPERATOR <~> (
    LEFTARG = text, RIGHTARG = text, FUNCTION = infer_distance, COMMUTATOR = '<~>'
);

-- WHERE col <~ 'query' > 0.5: similarity, higher = more similar.
CREATE OPERATOR <~ (
    LEFTARG = text, RIGHTARG = text, FUNCTION = infer_similarity, COMMUTATOR = '<~'
);

-- 'France' @> 'Paris': does the model's knowledge of the left imply the
-- right (implies())? Core PostgreSQL has no text @> text, and a literal
-- pair resolves to this one (unknown literals prefer the string category).
CREATE OPERATOR @> (
    LEFTARG = text, RIGHTARG = text, FUNCTION = infer_implies_op
);

CREATE FUNCTION infer_am_handler(internal) RETURNS index_am_handler
AS 'MODULE_PATHNAME', 'infer_am_handler'
LANGUAGE C;

CREATE ACCESS METHOD infer TYPE INDEX HANDLER infer_am_handler;

-- pg_infer's name, the default; text_infer_ops (this project's earlier
-- name) stays usable by name in CREATE INDEX.
CREATE OPERATOR FAMILY infer_ops USING infer;
CREATE OPERATOR CLASS infer_text_ops DEFAULT FOR TYPE text USING infer FAMILY infer_ops AS
    OPERATOR 1 <~> (text, text) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS text_infer_ops FOR TYPE text USING infer AS
    OPERATOR 1 <~> (text, text) FOR ORDER BY float_ops;

-- Models stored in index pages (extension/src/index_model.c):
--   CREATE INDEX countries ON infer._models USING infer (name)
--       WITH (source = '/models/countries.vindex');
-- registers model "countries", loaded from the index from then on. The
-- table's rows are not used.
CREATE TABLE infer._models (name text);
