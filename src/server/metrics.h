/* metrics.h - the server's counters and latency histograms, exposed with the
 * engine's gauges at GET /metrics in the Prometheus text format (0.0.4).
 *
 * Every counter is an atomic: connection threads update them without locks. */
#ifndef LAMINA_SERVER_METRICS_H
#define LAMINA_SERVER_METRICS_H

#include "engine/engine.h"
#include "server/strbuf.h"

typedef struct srv_metrics srv_metrics;

/* NULL on allocation failure */
srv_metrics *metrics_create(void);
void metrics_free(srv_metrics *m);

/* one HTTP response of ENDPOINT (router_endpoint()) with STATUS */
void metrics_count_request(srv_metrics *m, int endpoint, int status);
/* seconds from submit to the first token of a sequence */
void metrics_observe_ttft(srv_metrics *m, double seconds);
/* seconds between two tokens of a sequence */
void metrics_observe_itl(srv_metrics *m, double seconds);
/* a sequence that ended: reason "stop", "length", "abort" (client gone or shutdown) or "error" */
void metrics_count_finish(srv_metrics *m, const char *reason);

/* The exposition text: our counters, the engine's STATS, and IN_FLIGHT
 * generation requests. */
void metrics_render(srv_metrics *m, const lm_engine_stats *stats, int in_flight, strbuf *out);

#endif
