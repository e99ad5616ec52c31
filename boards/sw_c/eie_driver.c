/* eie_driver.c: see eie_driver.h. C99, no allocation; the MMIO is a volatile pointer. */
#include "eie_driver.h"

#include <stdio.h>
#include <string.h>

#ifdef EIE_MMIO_HOOKS
/* Test builds: every access goes through two function pointers (the simulation harness
   points them at the simulated AXI4-Lite port). */
uint32_t (*eie_mmio_read_hook)(uint32_t offset);
void (*eie_mmio_write_hook)(uint32_t offset, uint32_t value);
#define RD(offset) ((void)dev, eie_mmio_read_hook(offset))
#define WR(offset, value) ((void)dev, eie_mmio_write_hook((offset), (value)))
#else
#define RD(offset) (dev->base[(offset) / 4u])
#define WR(offset, value) (dev->base[(offset) / 4u] = (value))
#endif

const char *eie_strerror(int err)
{
    switch (err) {
    case EIE_OK: return "ok";
    case EIE_ENODEV: return "no EIE/ESE core at this address (ID register)";
    case EIE_ECONFIG: return "the design's CONFIG_ID is not this build's";
    case EIE_EFILE: return "image file missing or too short";
    case EIE_ETIMEOUT: return "the run did not finish";
    case EIE_EARG: return "bad argument";
    default: return "unknown error";
    }
}

void eie_reset_state(eie_dev *dev)
{
    dev->addr_known = 0;
    dev->hi_known = 0;
}

int eie_open(eie_dev *dev, volatile void *base)
{
    dev->base = (volatile uint32_t *)base;
    dev->max_polls = 100000000L;
    eie_reset_state(dev);
    if (RD(EIE_AXI_ID) != EIE_AXI_ID_VALUE)
        return EIE_ENODEV;
    if (RD(EIE_AXI_CONFIG_ID) != EIE_CONFIG_ID || RD(EIE_AXI_N_PES) != EIE_N_PES)
        return EIE_ECONFIG;
    return EIE_OK;
}

uint32_t eie_reg_read(eie_dev *dev, uint32_t reg)
{
    return RD(EIE_REGS_WINDOW + 4u * reg);
}

void eie_reg_write(eie_dev *dev, uint32_t reg, uint32_t value)
{
    WR(EIE_REGS_WINDOW + 4u * reg, value);
}

static void set_addr(eie_dev *dev, uint32_t addr)
{
    if (!dev->addr_known || dev->host_addr != addr)
        WR(EIE_AXI_HOST_ADDR, addr);
    dev->host_addr = addr + 1u;
    dev->addr_known = 1;
}

void eie_host_write(eie_dev *dev, uint32_t addr, uint64_t value)
{
    uint32_t hi = (uint32_t)(value >> 32);
    if (!dev->hi_known || dev->wdata_hi != hi) {
        WR(EIE_AXI_WDATA_HI, hi);
        dev->wdata_hi = hi;
        dev->hi_known = 1;
    }
    set_addr(dev, addr);
    WR(EIE_AXI_DATA_LO, (uint32_t)value);
}

int32_t eie_host_read32(eie_dev *dev, uint32_t addr)
{
    uint32_t raw;
    set_addr(dev, addr);
    raw = RD(EIE_AXI_DATA_LO);
    /* activations are sign-extended and at most 32 bits wide: no RDATA_HI needed */
    return raw >= 0x80000000u ? -(int32_t)(~raw) - 1 : (int32_t)raw;
}

int eie_load_bin(eie_dev *dev, const char *path, uint32_t first, unsigned bytes,
                 unsigned depth, int program, uint32_t high_reg)
{
    unsigned char word[16];
    unsigned k, b;
    FILE *f;
    if (bytes == 0 || bytes > sizeof word)
        return EIE_EARG;
    f = fopen(path, "rb");
    if (f == NULL)
        return EIE_EFILE;
    for (k = 0; k < depth; k++) {
        uint64_t low = 0;
        uint32_t high = 0;
        if (fread(word, 1, bytes, f) != bytes) {
            fclose(f);
            return EIE_EFILE;
        }
        for (b = 0; b < bytes && b < 8u; b++)
            low |= (uint64_t)word[b] << (8u * b);
        for (b = 8; b < bytes && b < 12u; b++)
            high |= (uint32_t)word[b] << (8u * (b - 8u));
        /* narrow signed memories are stored in their width: sign-extension is not
           needed, the core truncates every word to the memory's width */
        if (program && bytes > 8u)
            eie_reg_write(dev, high_reg, high);
        eie_host_write(dev, first + k, low);
    }
    fclose(f);
    return EIE_OK;
}

static int load_file(eie_dev *dev, const char *dir, const char *name, uint32_t first,
                     unsigned bytes, unsigned depth)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return EIE_EARG;
    return eie_load_bin(dev, path, first, bytes, depth, 0, 0);
}

int eie_load_image(eie_dev *dev, const char *dir, const char *ops)
{
    static const char *const names[4] = {"spmat", "ptr_even", "ptr_odd", "bias"};
    static const uint32_t sels[4] = {EIE_MEM_SPMAT, EIE_MEM_PTR_EVEN, EIE_MEM_PTR_ODD,
                                     EIE_MEM_BIAS};
    static const unsigned bytes[4] = {EIE_SPMAT_BYTES, EIE_PTR_EVEN_BYTES,
                                      EIE_PTR_ODD_BYTES, EIE_BIAS_BYTES};
    static const unsigned depths[4] = {EIE_SPMAT_DEPTH, EIE_PTR_EVEN_DEPTH,
                                       EIE_PTR_ODD_DEPTH, EIE_BIAS_DEPTH};
    char name[64];
    unsigned p, m;
    int err;
    for (p = 0; p < EIE_N_PES; p++) {
        for (m = 0; m < 4u; m++) {
            snprintf(name, sizeof name, "pe%03u_%s.bin", p, names[m]);
            err = load_file(dev, dir, name, EIE_HOST_ADDRESS(EIE_REGION_PE, p, sels[m], 0),
                            bytes[m], depths[m]);
            if (err)
                return err;
        }
#if EIE_ENGINE_ESE
        snprintf(name, sizeof name, "pe%03u_peephole.bin", p);
        err = load_file(dev, dir, name,
                        EIE_HOST_ADDRESS(ESE_REGION_PE, p, ESE_MEM_PEEPHOLE, 0),
                        ESE_PEEPHOLE_BYTES, ESE_PEEPHOLE_DEPTH);
        if (err)
            return err;
#endif
    }
    err = load_file(dev, dir, "codebook.bin", EIE_HOST_ADDRESS(EIE_REGION_CODEBOOK, 0, 0, 0),
                    EIE_CODEBOOK_BYTES, EIE_CODEBOOK_DEPTH);
    if (err)
        return err;
#if EIE_ENGINE_ESE
    err = load_file(dev, dir, "sigmoid.bin", EIE_HOST_ADDRESS(ESE_REGION_TABLES, 0, 0, 0),
                    ESE_TABLE_BYTES, ESE_TABLE_SIZE);
    if (err)
        return err;
    err = load_file(dev, dir, "tanh.bin",
                    EIE_HOST_ADDRESS(ESE_REGION_TABLES, 0, 0, ESE_TABLE_SIZE),
                    ESE_TABLE_BYTES, ESE_TABLE_SIZE);
    if (err)
        return err;
    if (ops == NULL)
        return EIE_EARG;
    err = eie_load_bin(dev, ops, EIE_HOST_ADDRESS(ESE_REGION_PROGRAM, 0, 0, 0),
                       EIE_PROGRAM_BYTES, EIE_PROGRAM_DEPTH, 1, ESE_REG_WDATA_HIGH);
    if (err)
        return err;
#ifdef ESE_IMAGE_X_WORDS
    eie_reg_write(dev, ESE_REG_X_WORDS, ESE_IMAGE_X_WORDS);
    eie_reg_write(dev, ESE_REG_OUT_BASE, ESE_IMAGE_OUT_BASE);
    eie_reg_write(dev, ESE_REG_OUT_WORDS, ESE_IMAGE_OUT_WORDS);
#endif
    return EIE_OK;
#else
    (void)ops;
    {
        char path[1024];
        if (snprintf(path, sizeof path, "%s/program.bin", dir) >= (int)sizeof path)
            return EIE_EARG;
        return eie_load_bin(dev, path, EIE_HOST_ADDRESS(EIE_REGION_PROGRAM, 0, 0, 0),
                            EIE_PROGRAM_BYTES, EIE_PROGRAM_DEPTH, 1, EIE_REG_WDATA_HIGH);
    }
#endif
}

static int wait_done(eie_dev *dev)
{
    long polls;
    /* polled through the window: the read follows the start strobe through the core's
       host port, so it cannot see the previous run's done bit */
    for (polls = 0; polls < dev->max_polls; polls++) {
        uint32_t status = eie_reg_read(dev, EIE_REG_CTRL_STATUS);
        if ((status & (EIE_STATUS_BUSY | EIE_STATUS_DONE)) == EIE_STATUS_DONE)
            return EIE_OK;
    }
    return EIE_ETIMEOUT;
}

int eie_run(eie_dev *dev, const int32_t *x, unsigned n_in, unsigned in_local,
            int32_t *y, unsigned n_out, unsigned bank, uint32_t *cycles)
{
    unsigned p, row, j;
    int err;
    if (n_in > in_local * EIE_N_PES || in_local > EIE_ACT_DEPTH)
        return EIE_EARG;
    for (p = 0; p < EIE_N_PES; p++)     /* PE-major: HOST_ADDR auto-increments */
        for (row = 0; row < in_local; row++) {
            j = row * EIE_N_PES + p;
            eie_host_write(dev, EIE_HOST_ADDRESS(EIE_REGION_PE, p, EIE_MEM_ACT0, row),
                           (uint64_t)(int64_t)(j < n_in ? x[j] : 0));
        }
    eie_reg_write(dev, EIE_REG_CTRL_STATUS, 1u);
    err = wait_done(dev);
    if (err)
        return err;
    for (p = 0; p < EIE_N_PES; p++)
        for (row = 0; row * EIE_N_PES + p < n_out; row++)
            y[row * EIE_N_PES + p] = eie_host_read32(
                dev, EIE_HOST_ADDRESS(EIE_REGION_PE, p, bank ? EIE_MEM_ACT1 : EIE_MEM_ACT0,
                                      row));
    if (cycles != NULL)
        *cycles = eie_reg_read(dev, EIE_REG_TOTAL_CYCLES);
    return EIE_OK;
}

#if EIE_ENGINE_ESE
static void ese_frame(eie_dev *dev, const int32_t *x, unsigned active, unsigned frames,
                      unsigned n_in, unsigned x_words, unsigned t)
{
    unsigned c, p, w, j, base = (t % ESE_FRAME_SLOTS) * ESE_SLOT_WORDS;
    for (c = 0; c < active; c++) {
        const int32_t *frame = x + ((unsigned long)c * frames + t) * n_in;
        eie_reg_write(dev, ESE_REG_CHANNEL_SEL, c);
        for (p = 0; p < EIE_N_PES; p++)
            for (w = 0; w < x_words; w++) {
                j = w * EIE_N_PES + p;
                eie_host_write(dev, EIE_HOST_ADDRESS(ESE_REGION_CHANNEL, p, ESE_CHAN_IN_RING,
                                                     base + w),
                               (uint64_t)(int64_t)(j < n_in ? frame[j] : 0));
            }
    }
}

int ese_run(eie_dev *dev, const int32_t *x, unsigned active, unsigned frames,
            unsigned n_in, unsigned x_words, int32_t *y, unsigned n_out,
            uint32_t *cycles)
{
    unsigned t, c, p, w, ready = frames < ESE_FRAME_SLOTS ? frames : ESE_FRAME_SLOTS;
    long polls;
    if (active == 0 || active > ESE_CHANNELS || x_words > ESE_SLOT_WORDS
        || n_in > x_words * EIE_N_PES)
        return EIE_EARG;
    for (t = 0; t < ready; t++)
        ese_frame(dev, x, active, frames, n_in, x_words, t);
    eie_reg_write(dev, ESE_REG_ACTIVE_CHANNELS, active);
    eie_reg_write(dev, ESE_REG_FRAMES, frames);
    eie_reg_write(dev, ESE_REG_FRAMES_READY, ready);
    eie_reg_write(dev, ESE_REG_CTRL_STATUS, 1u);
    for (t = 0; t < frames; t++) {
        unsigned base = (t % ESE_FRAME_SLOTS) * ESE_SLOT_WORDS;
        for (polls = 0; eie_reg_read(dev, ESE_REG_FRAME_COUNT) <= t; polls++)
            if (polls >= dev->max_polls)
                return EIE_ETIMEOUT;
        for (c = 0; c < active; c++) {
            int32_t *out = y + ((unsigned long)c * frames + t) * n_out;
            eie_reg_write(dev, ESE_REG_CHANNEL_SEL, c);
            for (p = 0; p < EIE_N_PES; p++)
                for (w = 0; w * EIE_N_PES + p < n_out; w++)
                    out[w * EIE_N_PES + p] = eie_host_read32(
                        dev, EIE_HOST_ADDRESS(ESE_REGION_CHANNEL, p, ESE_CHAN_OUT_RING,
                                              base + w));
        }
        if (cycles != NULL)
            cycles[t] = eie_reg_read(dev, ESE_REG_FRAME_CYCLES + t % ESE_FRAME_SLOTS);
        if (t + ESE_FRAME_SLOTS < frames) {   /* double buffering: refill t's slot */
            ese_frame(dev, x, active, frames, n_in, x_words, t + ESE_FRAME_SLOTS);
            eie_reg_write(dev, ESE_REG_FRAMES_READY, t + ESE_FRAME_SLOTS + 1u);
        }
    }
    return wait_done(dev);
}
#else
int ese_run(eie_dev *dev, const int32_t *x, unsigned active, unsigned frames,
            unsigned n_in, unsigned x_words, int32_t *y, unsigned n_out,
            uint32_t *cycles)
{
    (void)dev; (void)x; (void)active; (void)frames; (void)n_in; (void)x_words; (void)y;
    (void)n_out; (void)cycles;
    return EIE_EARG;    /* an EIE build */
}
#endif
