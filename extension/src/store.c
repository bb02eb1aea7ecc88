/*
 * store.c: infer._store_model_file(model text, file text, data bytea, replace boolean)
 *          infer._remove_model_files(model text)
 *
 * The database side of db.infer.createModel(bytes) where the TypeScript
 * API has no handle on the database's file system: a PGliteWorker client
 * in a page, whose database lives in a worker. The files go where
 * createModel writes them in-process, <infer.data_directory>/<model>.vindex/
 * below PGDATA (the backend's working directory), so a later
 * infer_create_model(model, '<model>.vindex') reads them and they persist
 * with the database. Names are checked as strictly as the host checks
 * them: a model name, and a plain file name. Superuser only (the SQL script
 * revokes them from PUBLIC): they write files.
 */
#include "pg_infer.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "guc.h"
#include "knowledge.h"
#include "model.h"

PG_FUNCTION_INFO_V1(infer_store_model_file);
PG_FUNCTION_INFO_V1(infer_remove_model_files);

/* A vindex file name: letters, digits, _ . -, not starting with a dot. */
static void
check_file_name(const char *file)
{
	bool ok = file[0] != '\0' && file[0] != '.' && strlen(file) <= 255;

	for (const char *p = file; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			 *p == '_' || *p == '.' || *p == '-';
	if (!ok)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid vindex file name \"%s\"", file),
						errhint("Use letters, digits, '_', '.' and '-', not starting with '.'.")));
}

static void
make_directory(const char *dir)
{
	if (mkdir(dir, S_IRWXU) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(), errmsg("could not create directory \"%s\": %m", dir)));
}

/* <infer.data_directory>/<model>.vindex, relative to PGDATA. */
static char *
model_directory(const char *model)
{
	return psprintf("%s/%s.vindex", infer_data_directory, model);
}

/* Removes the files of a model directory, then the directory; a missing one is fine. */
static void
remove_directory(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlink(psprintf("%s/%s", dir, e->d_name)) != 0)
			ereport(WARNING, (errcode_for_file_access(),
							  errmsg("could not remove \"%s/%s\": %m", dir, e->d_name)));
	}
	closedir(d);
	rmdir(dir);
}

Datum
infer_store_model_file(PG_FUNCTION_ARGS)
{
	char *model = text_to_cstring(required_text(fcinfo, 0, "model"));
	char *file = text_to_cstring(required_text(fcinfo, 1, "file"));
	bytea *data;
	char *dir;
	char *path;
	FILE *f;
	size_t len;

	if (PG_ARGISNULL(2))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("data must not be NULL")));
	data = PG_GETARG_BYTEA_PP(2);
	model_check_name(model);
	check_file_name(file);
	dir = model_directory(model);
	if (!PG_ARGISNULL(3) && PG_GETARG_BOOL(3))
		remove_directory(dir);
	make_directory(infer_data_directory);
	make_directory(dir);
	path = psprintf("%s/%s", dir, file);
	f = AllocateFile(path, PG_BINARY_W);
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(), errmsg("could not open \"%s\" for writing: %m", path)));
	len = VARSIZE_ANY_EXHDR(data);
	if (fwrite(VARDATA_ANY(data), 1, len, f) != len)
	{
		int save = errno;

		FreeFile(f);
		errno = save;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not write \"%s\": %m", path)));
	}
	if (FreeFile(f) != 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not close \"%s\": %m", path)));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s.vindex", model)));
}

Datum
infer_remove_model_files(PG_FUNCTION_ARGS)
{
	char *model = text_to_cstring(required_text(fcinfo, 0, "model"));

	model_check_name(model);
	remove_directory(model_directory(model));
	PG_RETURN_VOID();
}
