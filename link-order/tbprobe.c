/* A qemu-user plugin for link-order/generate.py --qemu: records the guest
 * address and length of every translation block executed once the file `phase=` names
 * exists, and writes them ("<hex address> <bytes>" lines) to `out=` when the guest exits.
 *
 * Why a plugin: qemu-user translates guest code once and runs the cached translation
 * after, so which pages of the binary a process reads says nothing about what it runs
 * later (the native probe's method). A callback on each executed block does.
 *
 * Any guest architecture (a block's length is the sum of its instructions' sizes).
 * Built against qemu 7.2's plugin API (version 1, Debian 12's qemu-user); the few
 * declarations it needs are written out below, since Debian ships no qemu-plugin.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t; /* not read */
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*atexit_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn;
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, atexit_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct block { uint64_t vaddr; uint64_t len; volatile int seen; struct block *next; };
static struct block *blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *phase_file, *out_file;
static volatile int phase2;
static volatile unsigned long ticks;

static void exec_cb(unsigned int vcpu, void *ud) {
    (void)vcpu;
    struct block *b = ud;
    if (!phase2) {
        if ((__atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED) & 0xffff) == 0
            && access(phase_file, F_OK) == 0)
            phase2 = 1;
        return;
    }
    b->seen = 1;
}

static void trans_cb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    struct block *b = calloc(1, sizeof *b);
    if (!b) return; /* the block goes unrecorded; the guest runs on */
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    for (size_t i = 0, n = qemu_plugin_tb_n_insns(tb); i < n; i++)
        b->len += qemu_plugin_insn_size(qemu_plugin_tb_get_insn(tb, i));
    pthread_mutex_lock(&lock);
    b->next = blocks; blocks = b;
    pthread_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_cb, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void at_exit(qemu_plugin_id_t id, void *ud) {
    (void)id; (void)ud;
    FILE *f = fopen(out_file, "w");
    if (!f) return;
    for (struct block *b = blocks; b; b = b->next)
        if (b->seen)
            fprintf(f, "%llx %llu\n", (unsigned long long)b->vaddr, (unsigned long long)b->len);
    fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "phase=", 6)) phase_file = argv[i] + 6;
        else if (!strncmp(argv[i], "out=", 4)) out_file = argv[i] + 4;
    }
    (void)info;
    if (!phase_file || !out_file) {
        fprintf(stderr, "tbprobe: phase= and out= are required\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, trans_cb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
