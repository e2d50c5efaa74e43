/*
 * Worker pool: threads that run blocking work (argon2id, SQL through libpq, later SAML signing) so that event
 * loops never block. A job is queued FIFO; a worker runs it with its own database connection, then hands it
 * back to the loop that submitted it through h2o's multithread queue, where `done` runs. When the client has
 * gone meanwhile, a guard linked to the request pool has cleared job->req, and `done` only cleans up.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

struct st_gw_workers_t {
    gw_server_t *server;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    gw_job_t *head, *tail;
    int stopping;
    size_t count;
    pthread_t *threads;
    gw_worker_t *workers;
};

/* What this worker's own transactions revoke is applied here, before the job's answer goes out. */
static void apply_own_notification(void *ctx, const char *payload)
{
    gw_revocation_apply(ctx, payload);
}

store_t *gw_worker_db(gw_worker_t *w)
{
    if (w->db == NULL) {
        char err[256];
        w->db = gw_store_open(w->pool->server->conf, w->pool->server->audit_key, err, sizeof(err));
        if (w->db != NULL && store_follow_own_notifications(w->db, apply_own_notification, w->pool->server) != 0) {
            store_close(w->db);
            w->db = NULL;
            snprintf(err, sizeof(err), "LISTEN failed");
        }
        if (w->db == NULL) {
            atomic_store(&w->pool->server->db_ready, 0);
            gw_log("error", "store", "db.connect_failed", "detail", err, NULL);
        }
    }
    return w->db;
}

static void *worker_main(void *arg)
{
    gw_worker_t *w = arg;
    gw_workers_t *pool = w->pool;

    for (;;) {
        pthread_mutex_lock(&pool->mutex);
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->mutex);
        gw_job_t *job = pool->head;
        if (job == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&pool->mutex);
            break;
        }
        pool->head = job->_next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->mutex);

        uint64_t before = w->db != NULL ? store_query_count(w->db) : 0;
        job->run(job, w);
        if (w->db != NULL)
            atomic_fetch_add(&gw_metrics.db_queries, store_query_count(w->db) - before);
        if (job->loop != NULL)
            h2o_multithread_send_message(&job->loop->job_receiver, &job->_msg);
        else
            free(job);
    }
    if (w->db != NULL)
        store_close(w->db);
    return NULL;
}

gw_workers_t *gw_workers_create(gw_server_t *server, size_t count)
{
    gw_workers_t *pool = calloc(1, sizeof(*pool));
    pool->server = server;
    pool->count = count;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->threads = calloc(count, sizeof(*pool->threads));
    pool->workers = calloc(count, sizeof(*pool->workers));
    for (size_t i = 0; i != count; ++i) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i;
        pthread_create(&pool->threads[i], NULL, worker_main, &pool->workers[i]);
    }
    return pool;
}

void gw_workers_destroy(gw_workers_t *pool)
{
    pthread_mutex_lock(&pool->mutex);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->mutex);
    for (size_t i = 0; i != pool->count; ++i)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->cond);
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

static void enqueue(gw_workers_t *pool, gw_job_t *job)
{
    job->_next = NULL;
    pthread_mutex_lock(&pool->mutex);
    if (pool->tail != NULL)
        pool->tail->_next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->mutex);
}

static void on_guard_dispose(void *p)
{
    gw_job_t **guard = p;
    if (*guard != NULL)
        (*guard)->req = NULL;
}

void gw_job_submit(gw_loop_t *loop, h2o_req_t *req, gw_job_t *job, gw_job_cb run, gw_job_done_cb done)
{
    job->loop = loop;
    job->req = req;
    job->run = run;
    job->done = done;
    job->_guard = NULL;
    if (req != NULL) {
        job->_guard = h2o_mem_alloc_shared(&req->pool, sizeof(*job->_guard), on_guard_dispose);
        *job->_guard = job;
    }
    enqueue(loop->server->workers, job);
}

void gw_job_submit_detached(gw_server_t *server, gw_job_t *job, gw_job_cb run)
{
    job->loop = NULL;
    job->req = NULL;
    job->run = run;
    job->done = NULL;
    job->_guard = NULL;
    enqueue(server->workers, job);
}

/* Runs on the loop thread: completes the jobs the workers finished. */
void gw_workers_on_complete(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        gw_job_t *job = H2O_STRUCT_FROM_MEMBER(gw_job_t, _msg, msg);
        if (job->_guard != NULL && job->req != NULL)
            *job->_guard = NULL; /* the request outlives the job: disarm the guard */
        job->done(job);
    }
}
