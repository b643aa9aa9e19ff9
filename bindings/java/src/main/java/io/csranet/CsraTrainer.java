package io.csranet;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Scripted training of a {@link CsraModel} (a native {@code CsraTrainer}): one
 * {@link #step(List, List)} at a time, checkpoints to resume.
 *
 * <p>A step takes the model exclusively (its write lock): segmentations on the same model wait
 * for it and it waits for them. Trainer methods are serialised among themselves. The trainer
 * keeps the native network alive, so it keeps working after the model is closed.
 */
public final class CsraTrainer implements AutoCloseable {
    private final CsraModel model;
    private final CsraModel.Handle handle;
    private final Cleaner.Cleanable cleanable;

    private CsraTrainer(CsraModel model, long ptr) {
        this.model = model;
        this.handle = new CsraModel.Handle(ptr, 1);
        this.cleanable = CsraModel.CLEANER.register(this, handle);
    }

    /** A trainer for {@code model}. */
    public static CsraTrainer create(CsraModel model, TrainConfig config) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(config, "config");
        model.lock.readLock().lock();
        try {
            long p = Native.trainerCreate(model.handleForTrainer(), config.ints(), config.floats(), config.seed());
            return new CsraTrainer(model, p);
        } finally {
            model.lock.readLock().unlock();
            Reference.reachabilityFence(model);
        }
    }

    private long live() {
        long p = handle.get();
        if (p == 0) {
            throw new IllegalStateException("CsraTrainer is closed");
        }
        return p;
    }

    private static Object[] batch(List<TrainTile> tiles, boolean labelled, String what) {
        byte[][] images = new byte[tiles.size()][];
        byte[][] labels = labelled ? new byte[tiles.size()][] : null;
        int[] dims = new int[2 * tiles.size()];
        for (int i = 0; i < tiles.size(); i++) {
            TrainTile t = Objects.requireNonNull(tiles.get(i), what + "[" + i + "]");
            if (labelled && t.label == null) {
                throw new IllegalArgumentException(what + "[" + i + "] has no label map");
            }
            images[i] = t.rgb;
            if (labelled) {
                labels[i] = t.label;
            }
            dims[2 * i] = t.width;
            dims[2 * i + 1] = t.height;
        }
        return new Object[] {images, dims, labels};
    }

    /**
     * One training step on a labelled batch and (except for the supervised method) an
     * unlabelled batch of at least 2 tiles ({@code unlabelled} may be null or empty for
     * supervised training). A NaN or infinite loss throws {@link CsraException} with
     * {@link Status#NUMERIC_ERROR} and leaves the weights unchanged.
     */
    public synchronized StepReport step(List<TrainTile> labelled, List<TrainTile> unlabelled) {
        Objects.requireNonNull(labelled, "labelled");
        Object[] l = batch(labelled, true, "labelled");
        Object[] u = unlabelled == null || unlabelled.isEmpty() ? null : batch(unlabelled, false, "unlabelled");
        model.lockExclusive("CsraTrainer.step");
        try {
            double[] r = Native.trainerStep(live(), (byte[][]) l[0], (int[]) l[1], (byte[][]) l[2],
                    u == null ? null : (byte[][]) u[0], u == null ? null : (int[]) u[1]);
            return new StepReport(r);
        } finally {
            model.lock.writeLock().unlock();
            Reference.reachabilityFence(this);
        }
    }

    /** Writes weights, optimizer state, step and (if not null) the sampler's state, atomically. */
    public synchronized void saveCheckpoint(Path path, CsraSampler sampler) {
        byte[] p = Strings.path(path);
        Object samplerLock = sampler == null ? new Object() : sampler;
        synchronized (samplerLock) {
            model.lock.readLock().lock();
            try {
                Native.trainerSave(live(), sampler == null ? 0 : sampler.live(), p);
            } finally {
                model.lock.readLock().unlock();
                Reference.reachabilityFence(this);
                Reference.reachabilityFence(sampler);
            }
        }
    }

    /** Restores a checkpoint into this trainer and its model (and the sampler, if not null). */
    public synchronized void loadCheckpoint(Path path, CsraSampler sampler) {
        byte[] p = Strings.path(path);
        Object samplerLock = sampler == null ? new Object() : sampler;
        synchronized (samplerLock) {
            model.lockExclusive("CsraTrainer.loadCheckpoint");
            try {
                Native.trainerLoad(live(), sampler == null ? 0 : sampler.live(), p);
            } finally {
                model.lock.writeLock().unlock();
                Reference.reachabilityFence(this);
                Reference.reachabilityFence(sampler);
            }
        }
    }

    /** The model this trainer trains. */
    public CsraModel model() {
        return model;
    }

    public boolean isClosed() {
        return handle.get() == 0;
    }

    /** Frees the native trainer; idempotent. */
    @Override
    public synchronized void close() {
        cleanable.clean();
    }
}
