/*
 * schemas.h -- the schema-registry half of a migration: inventory of a
 * Confluent-compatible registry, migration of subjects with their IDs and
 * versions, the proof that every ID resolves on the target to the same
 * canonical schema, and the source->target ID map that replicate applies
 * to wire-format records when the plan says `schemas.ids: rewrite`.
 *
 * Every registry is spoken to through the Confluent REST API (the one
 * every serializer uses): `<url>` is the ccompat base, for Apicurio
 * Registry `http://host:port/apis/ccompat/v7`.  One exception: Apicurio's
 * ccompat IMPORT mode accepts "id"/"version" but does not keep them, so
 * for an Apicurio target the IDs are kept through its admin import
 * (`/apis/registry/v3/admin/import`, a ZIP this module builds from the
 * source's subjects: content id = the Confluent schema id).
 *
 * What this module does not do: it never deletes anything on either
 * registry, never changes the source, never prints, and never reads Kafka
 * (the inventory samples which IDs records use; replicate and validate
 * call km_schemas_rewrite() on the records they hold).
 *
 * Results are jansson objects (the --json output and the journal fact at
 * once, like the inventory).  Every network call has a deadline.
 */
#ifndef KM_SCHEMAS_H
#define KM_SCHEMAS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "plan.h"

/* Per-request deadline (connect + transfer), milliseconds. */
#define KM_SCHEMAS_TIMEOUT_MS 15000
/* A registry answer larger than this is refused (everything read from the
 * network has a maximum). */
#define KM_SCHEMAS_MAX_BODY (64u * 1024u * 1024u)

/* A Confluent wire-format record starts with magic byte 0 and a 4-byte
 * big-endian schema id. */
#define KM_SCHEMAS_WIRE_MAGIC 0
#define KM_SCHEMAS_WIRE_HDR 5

/* A client of one registry; not thread-safe. */
typedef struct km_sr_s km_sr_t;

/*
 * Opens a client for the registry at url (the ccompat base) and proves it
 * answers (GET <url>/subjects) before returning.  role ("source",
 * "target") names it in errors.
 *
 * @returns KM_ERR_OK and a new client in *srp (km_sr_close()); otherwise
 *          KM_ERR_UNREACHABLE / KM_ERR_TIMEOUT / KM_ERR_UNSUPPORTED with
 *          one line naming the URL and the fix.
 */
km_err_t km_sr_open(const char *url, const char *role, km_sr_t **srp,
		    char *errstr, size_t errstr_size);
void km_sr_close(km_sr_t *sr);

/*
 * The registry's inventory: {"url", "kind": "apicurio"|"confluent-compatible",
 * "mode", "compatibility" (global), "subjects": [{"subject", "compatibility"
 * (effective), "versions": [{"version", "id", "schemaType", "schema",
 * "references": [{"name","subject","version"}]}]}], "ids": [sorted ids]}.
 * Types are always spelled (AVRO when the registry leaves it out).
 *
 * @returns KM_ERR_OK and a new object in *invp.
 */
km_err_t km_schemas_inventory(km_sr_t *sr, json_t **invp, char *errstr,
			      size_t errstr_size);

/*
 * Migrates every subject of the source registry to the target as the plan
 * says (schemas.ids), then proves it (km_schemas_verify(), with `used`: the
 * IDs the records were seen to use, an array of integers or NULL).  With dry_run
 * nothing is written: the result says what would be done and whether it
 * can be done.
 *
 * Keep (declared or undeclared): a source ID or subject version that the
 * target already holds with another schema is a collision and NO-GO
 * (nothing is written); subjects already identical are left alone.  Rewrite:
 * subjects are registered normally and the result carries "id_map".
 *
 * Result: {"ids", "method", "dry_run", "subjects": [...what was/would be
 * done...], "collisions": [...], "compatibility": [...levels set...],
 * "id_map": {"src": dst}, "proof": km_schemas_verify() result,
 * "verdict": "GO"|"NO-GO", "reason"}.
 *
 * @returns KM_ERR_OK with the result in *resultp (the verdict may be
 *          NO-GO); an error when a registry failed, naming the URL.
 */
km_err_t km_schemas_migrate(const km_plan_t *plan, km_sr_t *src, km_sr_t *dst,
			    bool dry_run, const json_t *used, json_t **resultp,
			    char *errstr, size_t errstr_size);

/*
 * The proof: every source schema ID (and every extra ID in `used`, an array
 * of integers seen in records, may be NULL) resolves on the target -- to
 * the same ID, or through id_map when not NULL -- to the same canonical
 * schema (type + normalised text + references); every subject's effective
 * compatibility level is equal on both sides.  Result: {"checked",
 * "mismatches": [...], "verdict"}.
 */
km_err_t km_schemas_verify(km_sr_t *src, km_sr_t *dst, const json_t *id_map,
			   const json_t *used, json_t **proofp, char *errstr,
			   size_t errstr_size);

/*
 * The source->target ID map of a rewrite migration, derived from both
 * registries (subject + version -> id on each side), for replicate.
 */
typedef struct km_schemas_idmap_s km_schemas_idmap_t;

km_err_t km_schemas_idmap_build(km_sr_t *src, km_sr_t *dst,
				km_schemas_idmap_t **mapp, char *errstr,
				size_t errstr_size);
void km_schemas_idmap_destroy(km_schemas_idmap_t *map);
/*
 * The map replicate and validate apply: NULL in *mapp (and KM_ERR_OK) unless
 * the plan says `schemas.ids: rewrite`; then built from the plan's two
 * registry URLs (an error names the missing URL or the unreachable one).
 */
km_err_t km_schemas_idmap_for_plan(const km_plan_t *plan, km_schemas_idmap_t **mapp,
				   char *errstr, size_t errstr_size);
/* Number of source IDs in the map. */
size_t km_schemas_idmap_size(const km_schemas_idmap_t *map);
/* @returns the map as {"src": dst} (new reference). */
json_t *km_schemas_idmap_json(const km_schemas_idmap_t *map);

/*
 * Rewrites the schema ID of one wire-format key or value in place.  A
 * buffer that does not start with magic byte 0 (or is shorter than 5
 * bytes) is not wire format and is left alone; one that does and whose ID
 * is not in the map is an error, never skipped.
 *
 * @locality any thread; the map is read-only after build.
 * @returns KM_ERR_OK; KM_ERR_NOT_FOUND naming the ID.
 */
km_err_t km_schemas_rewrite(const km_schemas_idmap_t *map, void *buf,
			    size_t len, char *errstr, size_t errstr_size);

#endif
