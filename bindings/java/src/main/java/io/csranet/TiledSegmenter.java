package io.csranet;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Segments a region of an image too large to hold in memory, reading it tile by tile (what a
 * QuPath extension or script does with a whole-slide image): each tile is read with
 * {@code padding} pixels of context on every side, segmented in one pass on one of
 * {@code threads} worker threads (concurrent inference on one model), objects touching a tile
 * edge that is not an image edge are dropped (they are whole in a neighbouring tile), and
 * duplicates found by two overlapping tiles are merged. Instances whose centroid lies outside
 * the requested region are left out.
 *
 * <p>Keep {@code padding} above the largest nucleus diameter, so every nucleus is whole in some
 * tile. Coordinates are pixels of the image the {@link TileReader} reads from (QuPath: the
 * image at the chosen downsample).
 */
public final class TiledSegmenter {
    /** Reads pixels of the image: a {@code width x height} region at {@code (x, y)}. */
    @FunctionalInterface
    public interface TileReader {
        BufferedImage read(int x, int y, int width, int height) throws IOException;
    }

    /** The merged instances and what happened to the rest. */
    public static final class Result {
        private final List<Instance> instances;
        private final int tiles;
        private final int candidates;
        private final int droppedAtEdges;
        private final int duplicates;

        Result(List<Instance> instances, int tiles, int candidates, int droppedAtEdges, int duplicates) {
            this.instances = instances;
            this.tiles = tiles;
            this.candidates = candidates;
            this.droppedAtEdges = droppedAtEdges;
            this.duplicates = duplicates;
        }

        /** Nuclei in image coordinates, sorted by centroid (y, then x), ids 1..n. */
        public List<Instance> instances() { return instances; }
        /** Tiles read and segmented. */
        public int tiles() { return tiles; }
        /** Instances found in all tiles before any was dropped. */
        public int candidates() { return candidates; }
        /** Instances dropped because they touched an inner tile edge. */
        public int droppedAtEdges() { return droppedAtEdges; }
        /** Instances dropped as duplicates of one kept from another tile. */
        public int duplicates() { return duplicates; }

        @Override
        public String toString() {
            return instances.size() + " nuclei from " + tiles + " tiles (" + candidates + " found, " + droppedAtEdges
                    + " dropped at tile edges, " + duplicates + " duplicates merged)";
        }
    }

    /** The smallest image side the native library segments. */
    static final int MIN_SIDE = 32;

    private final CsraModel model;
    private final int tileSize;
    private final int padding;
    private final int threads;
    private final SegmentOptions options;
    private final double duplicateOverlap;

    private TiledSegmenter(Builder b) {
        this.model = b.model;
        this.tileSize = b.tileSize;
        this.padding = b.padding;
        this.threads = b.threads;
        this.options = (b.options == null ? new SegmentOptions() : b.options.copy()).includeMaps(true)
                .keepProbabilities(false);
        this.duplicateOverlap = b.duplicateOverlap;
    }

    /** A builder with tile size 512, padding 64, one thread and default options. */
    public static Builder builder(CsraModel model) {
        return new Builder(model);
    }

    /** Settings of a {@link TiledSegmenter}. */
    public static final class Builder {
        private final CsraModel model;
        private int tileSize = 512;
        private int padding = 64;
        private int threads = 1;
        private SegmentOptions options;
        private double duplicateOverlap = 0.5;

        private Builder(CsraModel model) {
            this.model = Objects.requireNonNull(model, "model");
        }

        /** Side of the tiles read, padding included (64 to 2048). */
        public Builder tileSize(int v) { tileSize = v; return this; }
        /** Context on each side of a tile's core, pixels. */
        public Builder padding(int v) { padding = v; return this; }
        /** Worker threads segmenting tiles concurrently. */
        public Builder threads(int v) { threads = v; return this; }
        /** Native segmentation options (maps are always kept, probabilities never). */
        public Builder options(SegmentOptions v) { options = v; return this; }
        /** Two instances are duplicates when they share more than this fraction of the smaller. */
        public Builder duplicateOverlap(double v) { duplicateOverlap = v; return this; }

        public TiledSegmenter build() {
            if (tileSize < 64 || tileSize > 2048) {
                throw new IllegalArgumentException("tileSize must be within 64..2048, got " + tileSize);
            }
            if (padding < 0 || tileSize - 2 * padding < 16) {
                throw new IllegalArgumentException("padding must be >= 0 and leave tileSize - 2 * padding >= 16, got "
                        + padding + " with tileSize " + tileSize);
            }
            if (threads < 1 || threads > 256) {
                throw new IllegalArgumentException("threads must be within 1..256, got " + threads);
            }
            if (!(duplicateOverlap > 0 && duplicateOverlap <= 1)) {
                throw new IllegalArgumentException("duplicateOverlap must be in (0, 1], got " + duplicateOverlap);
            }
            return new TiledSegmenter(this);
        }
    }

    public int tileSize() { return tileSize; }
    public int padding() { return padding; }
    public int threads() { return threads; }

    /** A tile: its core (the part it is responsible for) and the window read around it. */
    static final class Tile {
        final int index;
        final int wx0;
        final int wy0;
        final int ww;
        final int wh;

        Tile(int index, int wx0, int wy0, int ww, int wh) {
            this.index = index;
            this.wx0 = wx0;
            this.wy0 = wy0;
            this.ww = ww;
            this.wh = wh;
        }
    }

    /** An instance found in a tile, with its pixels and how central it was in that tile. */
    static final class Candidate {
        final Instance instance; // image coordinates
        final boolean[] mask; // over its bounding box, row-major
        final double centrality;
        final int tile;

        Candidate(Instance instance, boolean[] mask, double centrality, int tile) {
            this.instance = instance;
            this.mask = mask;
            this.centrality = centrality;
            this.tile = tile;
        }

        boolean at(int x, int y) {
            Instance i = instance;
            return mask[(y - i.boundsY0()) * i.boundsWidth() + (x - i.boundsX0())];
        }
    }

    /** Windows covering {@code [x, x+w) x [y, y+h)} of a {@code imageW x imageH} image. */
    List<Tile> layout(int imageW, int imageH, int x, int y, int w, int h) {
        int core = tileSize - 2 * padding;
        List<Tile> tiles = new ArrayList<>();
        for (int cy = y; cy < y + h; cy += core) {
            int[] wy = window(cy, Math.min(cy + core, y + h), imageH);
            for (int cx = x; cx < x + w; cx += core) {
                int[] wx = window(cx, Math.min(cx + core, x + w), imageW);
                tiles.add(new Tile(tiles.size(), wx[0], wy[0], wx[1] - wx[0], wy[1] - wy[0]));
            }
        }
        return tiles;
    }

    private int[] window(int c0, int c1, int size) {
        int a = Math.max(0, c0 - padding);
        int b = Math.min(size, c1 + padding);
        if (b - a < MIN_SIDE) {
            b = Math.min(size, a + MIN_SIDE);
            a = Math.max(0, b - MIN_SIDE);
        }
        return new int[] {a, b};
    }

    /**
     * Segments {@code [x, x+width) x [y, y+height)} of an {@code imageWidth x imageHeight} image
     * (the region is clipped to the image). {@code listener} (may be null) hears
     * {@code (tiles done, tiles)} on the calling thread; returning false, or interrupting the
     * calling thread, cancels the run with {@link CsraCancelledException} (the interrupt flag is
     * kept) and stops the workers after their current tile.
     *
     * @throws IOException when the reader fails
     */
    public Result segment(TileReader reader, int imageWidth, int imageHeight, int x, int y, int width, int height,
            ProgressListener listener) throws IOException {
        Objects.requireNonNull(reader, "reader");
        if (imageWidth <= 0 || imageHeight <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + imageWidth + "x" + imageHeight);
        }
        if (width < 0 || height < 0) {
            throw new IllegalArgumentException("region size must not be negative, got " + width + "x" + height);
        }
        int rx0 = Math.max(0, x);
        int ry0 = Math.max(0, y);
        int rx1 = (int) Math.min(imageWidth, (long) x + width);
        int ry1 = (int) Math.min(imageHeight, (long) y + height);
        if (rx1 <= rx0 || ry1 <= ry0) {
            return new Result(List.of(), 0, 0, 0, 0);
        }
        if (model.isClosed()) {
            throw new IllegalStateException("CsraModel is closed");
        }
        List<Tile> tiles = layout(imageWidth, imageHeight, rx0, ry0, rx1 - rx0, ry1 - ry0);
        List<List<Candidate>> found = new ArrayList<>(java.util.Collections.nCopies(tiles.size(), null));
        int[] dropped = new int[tiles.size()];

        AtomicInteger threadNo = new AtomicInteger();
        ThreadFactory tf = r -> {
            Thread t = new Thread(r, "csranet-tile-" + threadNo.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        ExecutorService pool = Executors.newFixedThreadPool(Math.min(threads, tiles.size()), tf);
        ExecutorCompletionService<Integer> done = new ExecutorCompletionService<>(pool);
        List<Future<Integer>> futures = new ArrayList<>();
        try {
            for (Tile t : tiles) {
                futures.add(done.submit(() -> {
                    if (Thread.currentThread().isInterrupted()) {
                        throw new CancellationException();
                    }
                    List<Candidate> c = new ArrayList<>();
                    dropped[t.index] = segmentTile(reader, imageWidth, imageHeight, t, c);
                    synchronized (found) {
                        found.set(t.index, c);
                    }
                    return t.index;
                }));
            }
            for (int k = 1; k <= tiles.size(); k++) {
                Future<Integer> f;
                try {
                    f = done.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CsraCancelledException("cancelled: the thread was interrupted");
                }
                try {
                    f.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CsraCancelledException("cancelled: the thread was interrupted");
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    if (cause instanceof UncheckedIOException) {
                        throw ((UncheckedIOException) cause).getCause();
                    }
                    if (cause instanceof IOException) {
                        throw (IOException) cause;
                    }
                    if (cause instanceof RuntimeException) {
                        throw (RuntimeException) cause;
                    }
                    if (cause instanceof Error) {
                        throw (Error) cause;
                    }
                    throw new CsraException(Status.INTERNAL_ERROR, String.valueOf(cause));
                }
                if (Thread.currentThread().isInterrupted()) {
                    throw new CsraCancelledException("cancelled: the thread was interrupted");
                }
                if (listener != null && !listener.progress(k, tiles.size())) {
                    throw new CsraCancelledException("cancelled by the ProgressListener");
                }
            }
        } finally {
            for (Future<Integer> f : futures) {
                f.cancel(true);
            }
            pool.shutdownNow();
        }

        List<Candidate> all = new ArrayList<>();
        int drops = 0;
        for (int k = 0; k < tiles.size(); k++) {
            all.addAll(found.get(k));
            drops += dropped[k];
        }
        int candidates = all.size() + drops;
        List<Candidate> kept = merge(all, duplicateOverlap);
        int duplicates = all.size() - kept.size();
        List<Instance> out = new ArrayList<>();
        for (Candidate c : kept) {
            Instance i = c.instance;
            if (i.centroidX() >= rx0 && i.centroidX() < rx1 && i.centroidY() >= ry0 && i.centroidY() < ry1) {
                out.add(i);
            }
        }
        out.sort(Comparator.comparingDouble(Instance::centroidY).thenComparingDouble(Instance::centroidX));
        List<Instance> numbered = new ArrayList<>(out.size());
        for (int k = 0; k < out.size(); k++) {
            numbered.add(out.get(k).translate(0, 0, k + 1));
        }
        return new Result(java.util.Collections.unmodifiableList(numbered), tiles.size(), candidates, drops,
                duplicates);
    }

    /** Reads and segments one tile; adds its whole instances to {@code out}, returns how many were dropped. */
    private int segmentTile(TileReader reader, int imageW, int imageH, Tile t, List<Candidate> out) throws IOException {
        BufferedImage img = reader.read(t.wx0, t.wy0, t.ww, t.wh);
        if (img == null) {
            throw new IOException("the TileReader returned null for " + t.ww + "x" + t.wh + " at (" + t.wx0 + ", "
                    + t.wy0 + ")");
        }
        // The reader may round the size (e.g. QuPath at a downsample): use what it returned.
        int w = img.getWidth();
        int h = img.getHeight();
        boolean leftIsImage = t.wx0 <= 0;
        boolean topIsImage = t.wy0 <= 0;
        boolean rightIsImage = t.wx0 + w >= imageW;
        boolean bottomIsImage = t.wy0 + h >= imageH;
        if (w < MIN_SIDE || h < MIN_SIDE) {
            // A tiny image: pad with white (no nuclei) to the smallest size the library takes.
            BufferedImage p = new BufferedImage(Math.max(w, MIN_SIDE), Math.max(h, MIN_SIDE), BufferedImage.TYPE_INT_RGB);
            Graphics2D g = p.createGraphics();
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, p.getWidth(), p.getHeight());
            g.drawImage(img, 0, 0, null);
            g.dispose();
            img = p;
            rightIsImage |= w < MIN_SIDE;
            bottomIsImage |= h < MIN_SIDE;
        }
        Segmentation seg = model.segmentTile(img, options);
        int sw = seg.width();
        int sh = seg.height();
        int[] labels = seg.labelsNoCopy();
        int drops = 0;
        for (Instance i : seg.instances()) {
            boolean cut = (i.boundsX0() <= 0 && !leftIsImage) || (i.boundsY0() <= 0 && !topIsImage)
                    || (i.boundsX1() >= sw && !rightIsImage) || (i.boundsY1() >= sh && !bottomIsImage);
            if (cut) {
                drops++;
                continue;
            }
            int bw = i.boundsWidth();
            int bh = i.boundsHeight();
            boolean[] mask = new boolean[bw * bh];
            for (int yy = 0; yy < bh; yy++) {
                int row = (i.boundsY0() + yy) * sw + i.boundsX0();
                for (int xx = 0; xx < bw; xx++) {
                    mask[yy * bw + xx] = labels[row + xx] == i.id();
                }
            }
            // Distance of the centroid from the nearest inner edge: more context, more trust.
            double c = Double.MAX_VALUE;
            if (!leftIsImage) {
                c = Math.min(c, i.centroidX());
            }
            if (!topIsImage) {
                c = Math.min(c, i.centroidY());
            }
            if (!rightIsImage) {
                c = Math.min(c, sw - i.centroidX());
            }
            if (!bottomIsImage) {
                c = Math.min(c, sh - i.centroidY());
            }
            out.add(new Candidate(i.translate(t.wx0, t.wy0, i.id()), mask, c, t.index));
        }
        return drops;
    }

    /**
     * Greedy duplicate removal: candidates in order of centrality (then area, tile, position);
     * one is dropped when it shares more than {@code overlap} of the smaller area with one kept.
     */
    static List<Candidate> merge(List<Candidate> candidates, double overlap) {
        List<Candidate> order = new ArrayList<>(candidates);
        order.sort(Comparator.comparingDouble((Candidate c) -> -c.centrality)
                .thenComparingInt(c -> -c.instance.area())
                .thenComparingInt(c -> c.tile)
                .thenComparingDouble(c -> c.instance.centroidY())
                .thenComparingDouble(c -> c.instance.centroidX()));
        final int cell = 64;
        Map<Long, List<Candidate>> grid = new HashMap<>();
        List<Candidate> kept = new ArrayList<>();
        for (Candidate c : order) {
            Instance a = c.instance;
            int gx0 = Math.floorDiv(a.boundsX0(), cell);
            int gx1 = Math.floorDiv(a.boundsX1() - 1, cell);
            int gy0 = Math.floorDiv(a.boundsY0(), cell);
            int gy1 = Math.floorDiv(a.boundsY1() - 1, cell);
            boolean duplicate = false;
            java.util.Set<Candidate> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            search:
            for (int gy = gy0; gy <= gy1; gy++) {
                for (int gx = gx0; gx <= gx1; gx++) {
                    List<Candidate> bucket = grid.get(key(gx, gy));
                    if (bucket == null) {
                        continue;
                    }
                    for (Candidate k : bucket) {
                        if (seen.add(k) && shared(c, k) > overlap * Math.min(countOf(c), countOf(k))) {
                            duplicate = true;
                            break search;
                        }
                    }
                }
            }
            if (duplicate) {
                continue;
            }
            kept.add(c);
            for (int gy = gy0; gy <= gy1; gy++) {
                for (int gx = gx0; gx <= gx1; gx++) {
                    grid.computeIfAbsent(key(gx, gy), z -> new ArrayList<>()).add(c);
                }
            }
        }
        return kept;
    }

    private static long key(int gx, int gy) {
        return ((long) gx << 32) ^ (gy & 0xffffffffL);
    }

    private static int countOf(Candidate c) {
        int n = 0;
        for (boolean b : c.mask) {
            if (b) {
                n++;
            }
        }
        return Math.max(n, 1);
    }

    /** Pixels two candidates share. */
    static int shared(Candidate a, Candidate b) {
        Instance p = a.instance;
        Instance q = b.instance;
        int x0 = Math.max(p.boundsX0(), q.boundsX0());
        int x1 = Math.min(p.boundsX1(), q.boundsX1());
        int y0 = Math.max(p.boundsY0(), q.boundsY0());
        int y1 = Math.min(p.boundsY1(), q.boundsY1());
        int n = 0;
        for (int yy = y0; yy < y1; yy++) {
            for (int xx = x0; xx < x1; xx++) {
                if (a.at(xx, yy) && b.at(xx, yy)) {
                    n++;
                }
            }
        }
        return n;
    }
}
