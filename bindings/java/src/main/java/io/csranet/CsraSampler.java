package io.csranet;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.Objects;

/**
 * Class-aware sampling (CAS) of labelled tiles (a native {@code CsraSampler}): tiles holding
 * rare classes are drawn more often early in training, decaying over the epochs. Methods are
 * synchronized.
 */
public final class CsraSampler implements AutoCloseable {
    private final CsraModel.Handle handle;
    private final Cleaner.Cleanable cleanable;

    private CsraSampler(long ptr) {
        handle = new CsraModel.Handle(ptr, 2);
        cleanable = CsraModel.CLEANER.register(this, handle);
    }

    /**
     * A sampler over {@code presence.length} tiles: {@code presence[i][c]} says whether tile i
     * holds a nucleus of class c (background excluded: index 0 is the first nucleus class);
     * {@code tissueIds} may be null (-1 = none).
     */
    public static CsraSampler create(int[] tissueIds, boolean[][] presence, float alpha0, int period, int totalEpochs,
            long seed) {
        Objects.requireNonNull(presence, "presence");
        int n = presence.length;
        int k = n == 0 ? 0 : Objects.requireNonNull(presence[0], "presence[0]").length;
        if (tissueIds != null && tissueIds.length != n) {
            throw new IllegalArgumentException("tissueIds has " + tissueIds.length + " entries for " + n + " tiles");
        }
        if (period < 0 || totalEpochs < 0) {
            throw new IllegalArgumentException("period and totalEpochs must not be negative");
        }
        byte[] flat = new byte[Math.multiplyExact(n, k)];
        for (int i = 0; i < n; i++) {
            boolean[] row = Objects.requireNonNull(presence[i], "presence[" + i + "]");
            if (row.length != k) {
                throw new IllegalArgumentException("presence rows differ in length");
            }
            for (int c = 0; c < k; c++) {
                flat[i * k + c] = (byte) (row[c] ? 1 : 0);
            }
        }
        return new CsraSampler(Native.samplerCreate(tissueIds, flat, n, k, alpha0, period, totalEpochs, seed));
    }

    long live() {
        long p = handle.get();
        if (p == 0) {
            throw new IllegalStateException("CsraSampler is closed");
        }
        return p;
    }

    /** Sets the epoch (the oversampling decays with it). */
    public synchronized void setEpoch(int epoch) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must not be negative");
        }
        try {
            Native.samplerSetEpoch(live(), epoch);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The next tile index (drawn with replacement). */
    public synchronized int next() {
        try {
            return (int) Native.samplerNext(live());
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    public boolean isClosed() {
        return handle.get() == 0;
    }

    @Override
    public synchronized void close() {
        cleanable.clean();
    }
}
