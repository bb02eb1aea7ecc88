-- pg_infer_vector 0.1.0: pg_infer's text embedding as pgvector's vector.
-- A companion extension, so pg_infer itself never needs pgvector:
--   CREATE EXTENSION pg_infer_vector CASCADE;  -- also creates pg_infer and vector

\echo Use "CREATE EXTENSION pg_infer_vector" to load this file. \quit

-- infer_embedding(input, model) (the mean input embedding that similar_to
-- uses, hidden_size values) as a vector, e.g. to fill or query a
-- vector(hidden_size) column: ORDER BY embed <=> infer_embed('query').
CREATE FUNCTION infer_embed(input text, model text DEFAULT NULL) RETURNS vector
LANGUAGE sql STABLE PARALLEL UNSAFE
AS $$ SELECT infer_embedding(input, model)::vector $$;
