#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const struct {
	const char *name;
	const char *desc;
	km_errclass_t cls;
} errs[] = {
#define KM__ERR_ROW(code, d, c) {#code, d, KM_ERRCLASS_##c},
	KM_ERR_MAP(KM__ERR_ROW)
#undef KM__ERR_ROW
};

const char *km_err_name(km_err_t err)
{
	return (unsigned)err < KM_ERR__COUNT ? errs[err].name : "UNKNOWN";
}

const char *km_err2str(km_err_t err)
{
	return (unsigned)err < KM_ERR__COUNT ? errs[err].desc : "unknown error";
}

km_errclass_t km_err_class(km_err_t err)
{
	return (unsigned)err < KM_ERR__COUNT ? errs[err].cls : KM_ERRCLASS_BUG;
}

int km_err_exit_code(km_err_t err)
{
	switch (km_err_class(err)) {
	case KM_ERRCLASS_OK: return 0;
	case KM_ERRCLASS_NOGO: return 1;
	case KM_ERRCLASS_USER: return 2;
	case KM_ERRCLASS_CLUSTER:
	case KM_ERRCLASS_IO:
	case KM_ERRCLASS_BUG: return 3;
	}
	return 3;
}

km_err_t km_seterr(char *errstr, size_t errstr_size, km_err_t err,
		   const char *fmt, ...)
{
	va_list ap;

	if (errstr && errstr_size) {
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return err;
}

void km_bug(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kmigrate: BUG at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
