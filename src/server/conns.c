/* conns.c - open connections and their read deadlines (see conns.h). */
#include "server/conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

struct conn_entry {
    conn_entry *prev, *next;
    int fd;
    bool reading;       /* waiting for (the rest of) a request */
    bool reaped;        /* its socket was shut down already */
    double deadline;    /* for the request it waits for (monotonic seconds) */
};

struct conns {
    pthread_mutex_t lock;
    conn_entry *head;
    int n;
};

conns *conns_create(void) {
    conns *cs = calloc(1, sizeof(*cs));
    if (cs) pthread_mutex_init(&cs->lock, NULL);
    return cs;
}

void conns_free(conns *cs) {
    if (!cs) return;
    for (conn_entry *e = cs->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

conn_entry *conns_open(conns *cs, int fd, double deadline) {
    conn_entry *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->fd = fd;
    e->reading = true;
    e->deadline = deadline;
    pthread_mutex_lock(&cs->lock);
    e->next = cs->head;
    if (cs->head) cs->head->prev = e;
    cs->head = e;
    cs->n++;
    pthread_mutex_unlock(&cs->lock);
    return e;
}

void conns_close(conns *cs, conn_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&cs->lock);
    if (e->prev) e->prev->next = e->next;
    else cs->head = e->next;
    if (e->next) e->next->prev = e->prev;
    cs->n--;
    pthread_mutex_unlock(&cs->lock);
    free(e);
}

void conns_request_read(conns *cs, conn_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&cs->lock);
    e->reading = false;
    pthread_mutex_unlock(&cs->lock);
}

void conns_request_done(conns *cs, conn_entry *e, double deadline) {
    if (!e) return;
    pthread_mutex_lock(&cs->lock);
    e->reading = true;
    e->deadline = deadline;
    pthread_mutex_unlock(&cs->lock);
}

bool conns_overdue(conns *cs, const conn_entry *e, double now) {
    if (!e) return false;
    pthread_mutex_lock(&cs->lock);
    bool late = e->reading && now > e->deadline;
    pthread_mutex_unlock(&cs->lock);
    return late;
}

int conns_active(conns *cs) {
    pthread_mutex_lock(&cs->lock);
    int n = cs->n;
    pthread_mutex_unlock(&cs->lock);
    return n;
}

int conns_reap(conns *cs, double now) {
    int n = 0;
    pthread_mutex_lock(&cs->lock);
    for (conn_entry *e = cs->head; e; e = e->next) {
        if (!e->reading || e->reaped || now <= e->deadline) continue;
        shutdown(e->fd, SHUT_RDWR);
        e->reaped = true;
        n++;
    }
    pthread_mutex_unlock(&cs->lock);
    return n;
}
