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
	double confidence; /* product of its tokens' probabilities */
	int layer;         /* first layer whose logit lens ranks its first token top-1 */
} Prediction;

/*
 * For each relation with a template (infer.relation_templates) of a model
 * with inference weights, its predicted object for `entity`; *n is set
 * (0 for browse-level models or no templates).
 */
extern Prediction *predict_relations(InferModel *m, text *entity, int *n);

/* The relation label of a feature (infer.feature_labels), or NULL. */
typedef struct FeatureLabels FeatureLabels;
extern FeatureLabels *feature_labels_load(InferModel *m);
extern const char *feature_label(const FeatureLabels *labels, int layer, int feature);

#endif /* PG_INFER_PREDICT_H */
