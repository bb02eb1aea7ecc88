/*
 * compute_internal.h: what compute.c, compute_forward.c and compute_owned.c
 * share; not for the rest of the extension (compute.h is the seam).
 */
#ifndef PG_INFER_COMPUTE_INTERNAL_H
#define PG_INFER_COMPUTE_INTERNAL_H

#include "compute.h"

/* The host backend's key of a model: its name and load generation. */
extern void compute_model_key(const InferModel *m, char *key, size_t size);

/* A backend's name as infer.compute spells it; infer.compute's now. */
extern const char *compute_kind_name(ComputeBackendKind kind);
extern const char *compute_backend_name(void);

/*
 * Hands backend `backend` every forward weight of model m from C's heap (an
 * owned model's matrices were streamed already), then the architecture.
 */
extern void compute_send_forward(InferModel *m, const char *key, int backend);

/* The backend answered "not loaded" right after it was given the model: 38000. */
pg_noreturn extern void compute_lost_after_load(const InferModel *m);

#endif
