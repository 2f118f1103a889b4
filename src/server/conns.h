/* conns.h - the server's open connections, for the connection limit and the
 * read deadline (slowloris defence).
 *
 * libmicrohttpd's own connection timeout only closes a connection after a
 * span of silence: a client that sends one header byte every few seconds
 * holds its connection (and, one thread per connection, a thread) forever.
 * So every connection here has a read deadline: its first complete request
 * (headers and body) must arrive within --read-timeout seconds of the
 * connection opening; a later one on a kept-alive connection within the
 * longer of --read-timeout and --idle-timeout of the end of the previous
 * response (a client that proved itself may idle). The server's main thread
 * calls conns_reap() a few times a second; it shuts down the socket of each
 * connection past its deadline, which makes libmicrohttpd's blocked read
 * return and close the connection.
 *
 * The list is guarded by one mutex; entries are added and removed from
 * libmicrohttpd's connection notifications, which run before it closes the
 * socket, so conns_reap() never touches a descriptor that was reused. */
#ifndef LAMINA_SERVER_CONNS_H
#define LAMINA_SERVER_CONNS_H

#include <stdbool.h>

typedef struct conns conns;
typedef struct conn_entry conn_entry;

conns *conns_create(void);
void conns_free(conns *cs);

/* a new connection on socket FD whose first request must be read by
 * DEADLINE (monotonic seconds); NULL on allocation failure: not tracked */
conn_entry *conns_open(conns *cs, int fd, double deadline);
void conns_close(conns *cs, conn_entry *e);

/* the current request was read completely: no read deadline until it ends */
void conns_request_read(conns *cs, conn_entry *e);
/* the response ended: the next request must be read by DEADLINE */
void conns_request_done(conns *cs, conn_entry *e, double deadline);
/* the connection is waiting for a request past its deadline */
bool conns_overdue(conns *cs, const conn_entry *e, double now);

int conns_active(conns *cs);

/* shuts down every connection still waiting for a complete request at
 * NOW, past its deadline; returns how many */
int conns_reap(conns *cs, double now);

#endif
