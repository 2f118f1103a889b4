/* sse.h - Server-Sent Events: the framing, and a stream that turns a
 * gen_job's events into an API's SSE body as the HTTP layer pulls bytes.
 *
 * The API-specific part is an sse_sink: callbacks that append the opening
 * events, one engine event, and the closing events to the output buffer. */
#ifndef LAMINA_SERVER_SSE_H
#define LAMINA_SERVER_SSE_H

#include <sys/types.h>

#include "server/gen.h"
#include "server/strbuf.h"

/* appends "data: <OBJ as compact JSON>\n\n" (OBJ stolen) */
void sse_data(strbuf *out, json_t *obj);
/* appends "event: NAME\ndata: <OBJ>\n\n" (OBJ stolen) */
void sse_event(strbuf *out, const char *name, json_t *obj);

typedef struct sse_sink {
    void *ctx;
    void (*begin)(void *ctx, strbuf *out);
    void (*event)(void *ctx, int choice, const lm_event *ev, strbuf *out);
    /* after the last event; CANCEL (else NULL): why generation was cut
     * short - shutdown or --request-timeout (when the client is gone, its
     * socket hung up, nothing is written and end is not called) */
    void (*end)(void *ctx, const srv_error *cancel, strbuf *out);
    void (*free)(void *ctx);
} sse_sink;

/* Takes ownership of JOB and of SINK.ctx (freed with sink.free). The
 * method, path and start time are kept for the request's log line, written
 * when the stream is freed. NULL on allocation failure (then JOB and the
 * sink are freed). */
sse_stream *sse_stream_create(srv_server *srv, gen_job *job, sse_sink sink);
void sse_stream_set_log(sse_stream *s, const char *method, const char *path, double t_start);

/* Fills BUF with up to MAX bytes of the body, blocking until some are ready.
 * Returns the bytes written (> 0), 0 at the end of the stream, or -1 when
 * the client is gone (drop the connection). */
ssize_t sse_stream_read(sse_stream *s, char *buf, size_t max);
void sse_stream_free(sse_stream *s);

#endif
