/*
 * utility.c: guards on DDL that would break a model's dependencies.
 *
 * An `infer` column index is built with one model's signatures, and a model
 * index holds a model that the registry names by the index's name. Neither
 * dependency is one PostgreSQL knows (a model is a row of infer.models, not
 * a catalog object), so the statements that could cut them are checked
 * here, before they run:
 *
 *   ALTER INDEX ... SET / RESET (model | source | level)  refused: the pages
 *       hold what the options named at build time; rebuild instead
 *   ALTER INDEX infer.<model index> RENAME                refused: the model
 *       is registered under the index's name
 *   REINDEX, VACUUM FULL, TRUNCATE, CLUSTER that rebuild model indexes:
 *       their models are copied first, since a rebuild starts from empty
 *       pages (index_model.c)
 *
 * Deleting a model's registry row while an index uses it is refused by a
 * trigger on infer.models (pg_infer--0.1.0.sql).
 */
#include "pg_infer.h"

#include "catalog/namespace.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

#include "deadline.h"
#include "model.h"

static ProcessUtility_hook_type prev_utility_hook = NULL;

/* The options whose values an infer index's pages were built from. */
static bool
is_build_option(const char *name)
{
	return strcmp(name, "model") == 0 || strcmp(name, "source") == 0 || strcmp(name, "level") == 0;
}

static void
check_alter_options(AlterTableStmt *stmt)
{
	ListCell *lc;

	foreach (lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		ListCell *o;

		if (cmd->subtype != AT_SetRelOptions && cmd->subtype != AT_ResetRelOptions &&
			cmd->subtype != AT_ReplaceRelOptions)
			continue;
		foreach (o, (List *) cmd->def)
		{
			DefElem *def = lfirst_node(DefElem, o);

			if (def->defnamespace == NULL && is_build_option(def->defname))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot change option \"%s\" of index \"%s\"", def->defname,
								stmt->relation->relname),
						 errdetail("An infer index's pages were built from its model; changing "
								   "the option would make them disagree."),
						 errhint("Drop the index and create it again with the new option.")));
		}
	}
}

static void
check_rename(RenameStmt *stmt)
{
	Oid relid;

	if (stmt->renameType != OBJECT_INDEX || stmt->relation == NULL)
		return;
	relid = RangeVarGetRelidExtended(stmt->relation, NoLock, RVR_MISSING_OK, NULL, NULL);
	if (!OidIsValid(relid) || get_rel_namespace(relid) != get_namespace_oid("infer", true))
		return;
	if (model_stored_in_index(get_rel_name(relid)))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("cannot rename index infer.%s: model \"%s\" is stored in it",
							   get_rel_name(relid), get_rel_name(relid)),
						errhint("A model index is named after its model. Store the model again "
								"under the new name and drop this one.")));
}

/* Whether rv names infer._models. */
static bool
is_models_table(RangeVar *rv)
{
	Oid nsp = get_namespace_oid("infer", true);
	Oid relid;

	if (rv == NULL || !OidIsValid(nsp))
		return false;
	relid = RangeVarGetRelidExtended(rv, NoLock, RVR_MISSING_OK, NULL, NULL);
	return OidIsValid(relid) && relid == get_relname_relid("_models", nsp);
}

/* Whether a statement may rebuild the indexes of infer._models. */
static bool
rebuilds_model_indexes(Node *stmt)
{
	ListCell *lc;

	if (IsA(stmt, ReindexStmt))
	{
		ReindexStmt *r = (ReindexStmt *) stmt;

		switch (r->kind)
		{
			case REINDEX_OBJECT_INDEX:
			{
				Oid relid =
					RangeVarGetRelidExtended(r->relation, NoLock, RVR_MISSING_OK, NULL, NULL);

				return OidIsValid(relid) &&
					   get_rel_namespace(relid) == get_namespace_oid("infer", true);
			}
			case REINDEX_OBJECT_TABLE:
				return is_models_table(r->relation);
			case REINDEX_OBJECT_SCHEMA:
				return r->name != NULL && strcmp(r->name, "infer") == 0;
			case REINDEX_OBJECT_DATABASE:
				return true;
			default:
				return false;
		}
	}
	if (IsA(stmt, TruncateStmt))
	{
		foreach (lc, ((TruncateStmt *) stmt)->relations)
			if (is_models_table(lfirst_node(RangeVar, lc)))
				return true;
		return false;
	}
	if (IsA(stmt, VacuumStmt))
	{
		VacuumStmt *v = (VacuumStmt *) stmt;
		bool full = false;

		foreach (lc, v->options)
		{
			DefElem *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "full") == 0)
				full = defGetBoolean(opt);
		}
		if (!v->is_vacuumcmd || !full)
			return false;
		if (v->rels == NIL)
			return true;
		foreach (lc, v->rels)
			if (is_models_table(lfirst_node(VacuumRelation, lc)->relation))
				return true;
		return false;
	}
	if (IsA(stmt, ClusterStmt))
		return ((ClusterStmt *) stmt)->relation == NULL ||
			   is_models_table(((ClusterStmt *) stmt)->relation);
	return false;
}

static void
infer_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node *stmt = pstmt->utilityStmt;

	if (IsA(stmt, AlterTableStmt) && ((AlterTableStmt *) stmt)->objtype == OBJECT_INDEX)
		check_alter_options((AlterTableStmt *) stmt);
	else if (IsA(stmt, RenameStmt))
		check_rename((RenameStmt *) stmt);
	else if (rebuilds_model_indexes(stmt))
		model_index_snapshot_all();

	deadline_utility_begin(context == PROCESS_UTILITY_TOPLEVEL);
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest,
								qc);
	deadline_utility_end();
	model_index_forget_snapshots();
}

void
utility_guards_init(void)
{
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = infer_process_utility;
}
