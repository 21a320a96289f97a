/* Reads the interposed libc clocks around sleeps and timed waits and prints the simulated deltas.
 * Built and run by host_time.rs against Phantom's libcudart.so.13 (a DT_NEEDED that precedes libc).
 * The clocks become virtual at the process's first CUDA call, so the program makes one first. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(clockid_t clk) {
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mono0;
static void report(const char *what) {
    printf("%s %.9f\n", what, (double)(ns(CLOCK_MONOTONIC) - mono0) / 1e9);
}

/* A hand-off through a condition variable: the worker waits until main signals, works, and signals back. */
static pthread_mutex_t hm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hc = PTHREAD_COND_INITIALIZER;
static int ready, turn;

/* Burns real CPU time, which deterministic host time does not charge, so that the other thread is surely waiting. */
static void spin_cpu_ms(int ms) {
    int64_t end = ns(CLOCK_PROCESS_CPUTIME_ID) + (int64_t)ms * 1000000;
    while (ns(CLOCK_PROCESS_CPUTIME_ID) < end) {
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&hm);
    ready = 1;
    pthread_cond_signal(&hc);
    while (turn != 1) pthread_cond_wait(&hc, &hm);
    pthread_mutex_unlock(&hm);
    report("worker_woken");
    usleep(2000);
    spin_cpu_ms(50);
    pthread_mutex_lock(&hm);
    turn = 2;
    pthread_cond_broadcast(&hc);
    pthread_mutex_unlock(&hm);
    usleep(1000);
    return NULL;
}

static void *thread_main(void *arg) {
    (void)arg;
    report("new_thread");
    usleep(1000);
    report("new_thread_after_usleep");
    return NULL;
}

int main(void) {
    /* The first CUDA call: from here on the clocks are virtual. */
    int (*get_count)(int *) = (int (*)(int *))dlsym(RTLD_DEFAULT, "cudaGetDeviceCount");
    int count = 0;
    int cuda_rc = get_count ? get_count(&count) : -1;
    printf("cudaGetDeviceCount %d %d\n", cuda_rc, count);
    mono0 = ns(CLOCK_MONOTONIC);
    int64_t real0 = ns(CLOCK_REALTIME);
    struct timeval tv0, tv1;
    gettimeofday(&tv0, NULL);

    struct timespec one_s = {1, 0};
    nanosleep(&one_s, NULL);
    report("nanosleep_1s");

    gettimeofday(&tv1, NULL);
    printf("gettimeofday %.6f\n", (double)((tv1.tv_sec - tv0.tv_sec) * 1000000LL + (tv1.tv_usec - tv0.tv_usec)) / 1e6);
    printf("realtime %.9f\n", (double)(ns(CLOCK_REALTIME) - real0) / 1e9);

    usleep(250000);
    report("usleep_250ms");
    sleep(2);
    report("sleep_2s");

    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += 500000000;
    if (dl.tv_nsec >= 1000000000) { dl.tv_sec += 1; dl.tv_nsec -= 1000000000; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
    report("clock_nanosleep_abs_500ms");
    struct timespec rel = {0, 125000000};
    clock_nanosleep(CLOCK_REALTIME, 0, &rel, NULL);
    report("clock_nanosleep_rel_125ms");

    time_t t = time(NULL);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("time_matches_realtime %d\n", t == rt.tv_sec);

    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 3;
    int rc = pthread_cond_timedwait(&c, &m, &dl);
    printf("cond_timedwait_3s %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : "other");
    report("after_cond_timedwait");
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += 4;
    rc = pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &dl);
    printf("cond_clockwait_4s %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : "other");
    report("after_cond_clockwait");
    pthread_mutex_unlock(&m);

    sem_t s;
    sem_init(&s, 0, 0);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    rc = sem_timedwait(&s, &dl);
    printf("sem_timedwait_5s %s\n", rc == -1 && errno == ETIMEDOUT ? "ETIMEDOUT" : "other");
    report("after_sem_timedwait");
    sem_post(&s);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    rc = sem_timedwait(&s, &dl);
    printf("sem_timedwait_posted %d\n", rc);
    report("after_posted_sem");

    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    pthread_join(th, NULL);
    report("main_after_join");

    pthread_t w;
    pthread_create(&w, NULL, worker_main, NULL);
    pthread_mutex_lock(&hm);
    while (!ready) pthread_cond_wait(&hc, &hm);
    pthread_mutex_unlock(&hm);
    usleep(3000);
    pthread_mutex_lock(&hm);
    turn = 1;
    pthread_cond_signal(&hc);
    while (turn != 2) pthread_cond_wait(&hc, &hm);
    pthread_mutex_unlock(&hm);
    report("main_woken");
    pthread_join(w, NULL);
    report("main_after_join_worker");

    struct timespec cpu;
    printf("process_cputime_rc %d\n", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu));
    return 0;
}
