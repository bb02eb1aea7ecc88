/*
 * predict.h: relation predictions for describe() and implies() (predict.c),
 * and the feature labels infer_label_relations() stores.
 */
#ifndef PG_INFER_PREDICT_H
#define PG_INFER_PREDICT_H

#include "postgres.h"

#include "model.h"

/* The model's greedy continuation of one relation's filled template. */
typedef struct Prediction
{
	char *relation;
	char *object;      /* the word or phrase, trimmed */
	char *lower;       /* normalized like describe()'s targets */
	double confidence; /* product of its tokens' probabilities; combined: see predict.c */
	double fit;        /* how well the subject fits the template's slot (predict.c) */
	bool fit_measured; /* false: no subject token had context (fit 1) */
	int layer;         /* first layer whose logit lens ranks its first token top-1 */
	const float *act;  /* [layers x intermediate]: FFN activations at the prompt's last position */
	/* for the layer, computed once the answer is chosen */
	struct ForwardRun *run;
	const float *resid; /* [layers x hidden]: the residual stream at the prompt's last position */
	int32 first;        /* the answer's first token */
} Prediction;

/*
 * For each relation with a template (infer.relation_templates) of a model
 * with inference weights, its predicted object for `entity`; *n is set
 * (0 for browse-level models or no templates).
 */
extern Prediction *predict_relations(InferModel *m, text *entity, int *n);

/*
 * The relation labels of a model's features (infer.feature_labels). A label
 * holds for the sign of activation with which the feature wrote the
 * relation's objects when it was learned.
 */
typedef struct FeatureLabels FeatureLabels;
extern FeatureLabels *feature_labels_load(InferModel *m);

/* A relation label of a feature, either sign (the first by name), or NULL. */
extern const char *feature_label(const FeatureLabels *labels, int layer, int feature);

/*
 * Every label of a feature as text: relations by name, "-" before one that
 * holds for negative activations ("capital, -language"); NULL when none.
 */
extern char *feature_label_list(const FeatureLabels *labels, int layer, int feature);

/* Whether the feature, firing with this activation's sign, is labelled `relation`. */
extern bool feature_has_label(const FeatureLabels *labels, int layer, int feature,
							  const char *relation, float activation);

#endif /* PG_INFER_PREDICT_H */
