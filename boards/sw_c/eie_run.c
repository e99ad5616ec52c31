/* eie_run.c: example host program (docs/board-run.md).
 *   eie_run BASE IMAGE_DIR X.i32 Y.i32 [ese_ops.bin]
 * maps the AXI4-Lite slave at physical address BASE through /dev/mem, loads the image's
 * .bin files, runs the inputs of X.i32 (little-endian int32: EIE [batch][n_in], ESE one
 * group [channels][T][n_in]) and writes the outputs to Y.i32 (same layout) and the
 * cycles to stdout. Sizes are the baked image's (EIE_IMAGE_* in eie_regs.h). */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eie_driver.h"

#define MAP_BYTES 0x2000u
#define MAX_VALUES 65536u

#if EIE_IMAGE_N_IN == 0
int main(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "%s: this build has no image (eie build --image)\n", argv[0]);
    return 2;
}
#else
static int32_t x_buf[MAX_VALUES], y_buf[MAX_VALUES];

int main(int argc, char **argv)
{
    eie_dev dev;
    unsigned long base;
    size_t count;
    unsigned k;
    int fd, err = EIE_OK;
    FILE *f;
    void *map;
    if (argc < 5) {
        fprintf(stderr, "usage: %s BASE IMAGE_DIR X.i32 Y.i32 [ese_ops.bin]\n", argv[0]);
        return 2;
    }
    base = strtoul(argv[1], NULL, 0);
    f = fopen(argv[3], "rb");
    if (f == NULL) {
        perror(argv[3]);
        return 1;
    }
    count = fread(x_buf, sizeof x_buf[0], MAX_VALUES, f);
    fclose(f);
    fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) {
        perror("/dev/mem");
        return 1;
    }
    map = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
    close(fd);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    err = eie_open(&dev, map);
    if (!err)
        err = eie_load_image(&dev, argv[2], argc > 5 ? argv[5] : NULL);
#if EIE_ENGINE_ESE
    if (!err) {
        unsigned frames = (unsigned)(count / (ESE_CHANNELS * EIE_IMAGE_N_IN));
        static uint32_t cycles[MAX_VALUES];
        if (frames == 0 || frames * ESE_CHANNELS * EIE_IMAGE_N_OUT > MAX_VALUES)
            err = EIE_EARG;
        else
            err = ese_run(&dev, x_buf, ESE_CHANNELS, frames, EIE_IMAGE_N_IN,
                          ESE_IMAGE_X_WORDS, y_buf, EIE_IMAGE_N_OUT, cycles);
        count = (size_t)frames * ESE_CHANNELS * EIE_IMAGE_N_OUT;
        for (k = 0; !err && k < frames; k++)
            printf("frame %u: %u cycles\n", k, (unsigned)cycles[k]);
    }
#else
    if (!err) {
        unsigned batch = (unsigned)(count / EIE_IMAGE_N_IN);
        if (batch * EIE_IMAGE_N_OUT > MAX_VALUES)
            err = EIE_EARG;
        for (k = 0; !err && k < batch; k++) {
            uint32_t cycles = 0;
            err = eie_run(&dev, x_buf + (size_t)k * EIE_IMAGE_N_IN, EIE_IMAGE_N_IN,
                          EIE_IMAGE_IN_LOCAL, y_buf + (size_t)k * EIE_IMAGE_N_OUT,
                          EIE_IMAGE_N_OUT, EIE_IMAGE_OUTPUT_BANK, &cycles);
            if (!err)
                printf("input %u: %u cycles\n", k, (unsigned)cycles);
        }
        count = (size_t)batch * EIE_IMAGE_N_OUT;
    }
#endif
    munmap(map, MAP_BYTES);
    if (err) {
        fprintf(stderr, "eie_run: %s\n", eie_strerror(err));
        return 1;
    }
    f = fopen(argv[4], "wb");
    if (f == NULL || fwrite(y_buf, sizeof y_buf[0], count, f) != count) {
        perror(argv[4]);
        return 1;
    }
    fclose(f);
    return 0;
}
#endif
