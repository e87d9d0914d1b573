/*
 * err.h -- the one error convention of libkm.
 *
 * Every fallible libkm function returns a km_err_t and, when it can fail for a
 * reason worth telling, takes `char *errstr, size_t errstr_size` last and
 * writes one lower-case line there: what failed first, the subject in quotes,
 * then the fix or librdkafka's own text.  The command layer maps the class of
 * the code to the process exit status (see km_err_exit_code()).
 *
 * Codes come from one X-macro list so that the enum, the names and the
 * classes can never drift apart.
 */
#ifndef KM_ERR_H
#define KM_ERR_H

#include <stddef.h>

/* Classes decide the exit code: USER -> 2, CLUSTER/IO -> 3, NOGO -> 1. */
typedef enum {
	KM_ERRCLASS_OK = 0,
	KM_ERRCLASS_NOGO,    /* a verdict or findings, not a failure of the tool */
	KM_ERRCLASS_USER,    /* usage, flags, plan file: the user must fix input */
	KM_ERRCLASS_CLUSTER, /* a cluster refused, timed out or is unreachable */
	KM_ERRCLASS_IO,      /* local files, journal */
	KM_ERRCLASS_BUG      /* should not happen */
} km_errclass_t;

#define KM_ERR_MAP(X)                                                          \
	X(OK, "ok", OK)                                                        \
	X(NOGO, "verdict is NO-GO", NOGO)                                      \
	X(FINDINGS, "findings need attention", NOGO)                           \
	X(USAGE, "usage error", USER)                                          \
	X(PLAN, "plan file error", USER)                                       \
	X(INVALID_ARG, "invalid argument", USER)                               \
	X(NOT_FOUND, "not found", USER)                                        \
	X(CONFLICT, "conflicting state", USER)                                 \
	X(UNREACHABLE, "cluster unreachable", CLUSTER)                         \
	X(AUTH, "authentication failed", CLUSTER)                              \
	X(AUTHZ, "not authorized", CLUSTER)                                    \
	X(TIMEOUT, "timed out", CLUSTER)                                       \
	X(KAFKA, "kafka error", CLUSTER)                                       \
	X(UNSUPPORTED, "not supported by the cluster", CLUSTER)                \
	X(IO, "i/o error", IO)                                                 \
	X(JOURNAL, "journal error", IO)                                        \
	X(BUG, "internal error", BUG)

typedef enum {
#define KM__ERR_ENUM(code, desc, cls) KM_ERR_##code,
	KM_ERR_MAP(KM__ERR_ENUM)
#undef KM__ERR_ENUM
	KM_ERR__COUNT
} km_err_t;

/* @returns the code's symbolic name, e.g. "UNREACHABLE"; static storage. */
const char *km_err_name(km_err_t err);
/* @returns a short description; static storage. */
const char *km_err2str(km_err_t err);
km_errclass_t km_err_class(km_err_t err);
/* @returns the process exit code for err: 0, 1, 2 or 3. */
int km_err_exit_code(km_err_t err);

/* Writes a formatted one-line message into errstr (never overflows) and
 * returns err, so that callers can `return km_seterr(...)`. */
km_err_t km_seterr(char *errstr, size_t errstr_size, km_err_t err,
		   const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Aborts with file:line.  For impossible states only, never for input. */
#define KM_BUG(...) km_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void km_bug(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
