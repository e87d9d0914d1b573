#include "offmap.h"

#include <stdlib.h>

#include "util.h"

int km_offmap_add(km_offmap_t *m, int64_t src_first, int64_t tgt_first,
		  int64_t count)
{
	km_offrun_t *last = m->cnt ? &m->runs[m->cnt - 1] : NULL;

	if (count <= 0)
		return -1;
	if (last) {
		if (src_first < last->src_first + last->count ||
		    tgt_first < last->tgt_first + last->count)
			return -1;
		if (src_first == last->src_first + last->count &&
		    tgt_first == last->tgt_first + last->count) {
			last->count += count;
			return 0;
		}
	}
	if (m->cnt == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->runs = km_realloc(m->runs, m->cap * sizeof(*m->runs));
	}
	m->runs[m->cnt].src_first = src_first;
	m->runs[m->cnt].tgt_first = tgt_first;
	m->runs[m->cnt].count = count;
	m->cnt++;
	return 0;
}

int km_offmap_translate(const km_offmap_t *m, int64_t c, int64_t *tgtp)
{
	size_t lo = 0, hi = m->cnt;

	/* First run whose last source offset is >= c. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const km_offrun_t *r = &m->runs[mid];
		if (r->src_first + r->count - 1 < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == m->cnt)
		return -1;
	const km_offrun_t *r = &m->runs[lo];
	*tgtp = c <= r->src_first ? r->tgt_first : r->tgt_first + (c - r->src_first);
	return 0;
}

int64_t km_offmap_source_of(const km_offmap_t *m, int64_t t)
{
	size_t lo = 0, hi = m->cnt;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const km_offrun_t *r = &m->runs[mid];
		if (r->tgt_first + r->count - 1 < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == m->cnt || t < m->runs[lo].tgt_first)
		return -1;
	return m->runs[lo].src_first + (t - m->runs[lo].tgt_first);
}

int64_t km_offmap_records(const km_offmap_t *m)
{
	int64_t n = 0;
	for (size_t i = 0; i < m->cnt; i++)
		n += m->runs[i].count;
	return n;
}

void km_offmap_clear(km_offmap_t *m)
{
	free(m->runs);
	m->runs = NULL;
	m->cnt = m->cap = 0;
}

int km_offrun_feed(km_offrun_builder_t *b, int64_t src, int64_t tgt,
		   km_offrun_t *done)
{
	if (b->open && src == b->cur.src_first + b->cur.count &&
	    tgt == b->cur.tgt_first + b->cur.count) {
		b->cur.count++;
		return 0;
	}
	int completed = b->open;
	if (completed)
		*done = b->cur;
	b->cur.src_first = src;
	b->cur.tgt_first = tgt;
	b->cur.count = 1;
	b->open = 1;
	return completed;
}

int km_offrun_finish(km_offrun_builder_t *b, km_offrun_t *done)
{
	if (!b->open)
		return 0;
	*done = b->cur;
	b->open = 0;
	return 1;
}
