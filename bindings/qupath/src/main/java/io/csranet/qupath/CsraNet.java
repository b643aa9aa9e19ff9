package io.csranet.qupath;

import io.csranet.CsraCancelledException;
import io.csranet.CsraModel;
import io.csranet.Instance;
import io.csranet.ProgressListener;
import io.csranet.SegmentOptions;
import io.csranet.TiledSegmenter;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import qupath.lib.common.ColorTools;
import qupath.lib.images.ImageData;
import qupath.lib.images.servers.ImageServer;
import qupath.lib.images.servers.PixelCalibration;
import qupath.lib.objects.PathObject;
import qupath.lib.objects.PathObjects;
import qupath.lib.objects.classes.PathClass;
import qupath.lib.regions.ImagePlane;
import qupath.lib.regions.RegionRequest;
import qupath.lib.roi.ROIs;
import qupath.lib.roi.interfaces.ROI;

/**
 * CSRA-Net nucleus detection for QuPath, scriptable from Groovy:
 *
 * <pre>
 * import io.csranet.qupath.CsraNet
 * def csranet = CsraNet.builder()
 *         .weights("/path/to/model.safetensors")   // leave out for the bundled model
 *         .pixelSize(0.5).tileSize(512).padding(64).threads(4)
 *         .build()
 * csranet.detectObjects(getCurrentImageData(), getSelectedObjects())
 * csranet.close()
 * </pre>
 *
 * A thin skin over the tested Java API ({@link TiledSegmenter}): it maps a parent's ROI to a
 * region of the image at the requested pixel size, reads tiles through the
 * {@link ImageServer}, and turns instances into detection objects with a {@link PathClass} and
 * measurements. Class names and colours are the model's ({@link CsraModel#className},
 * {@link CsraModel#classColour}: stored with the weights), names with a capital first letter as
 * QuPath writes them; the model's default colours for classes QuPath predefines (such as
 * "Other") are QuPath's own, which QuPath keeps whatever colour is given. Tiles overlap by
 * {@code padding}; objects touching an inner tile edge are dropped and duplicates merged; only objects whose centroid lies inside the parent ROI are
 * kept. Progress is logged (and given to {@link Builder#progress}); interrupting the thread
 * stops the run and leaves the parent unchanged.
 */
public final class CsraNet implements AutoCloseable {
    private static final Logger logger = LoggerFactory.getLogger(CsraNet.class);

    private final CsraModel model;
    private final double pixelSize;
    private final int tileSize;
    private final int padding;
    private final int threads;
    private final List<String> classNames;
    private final SegmentOptions options;
    private final ProgressListener progress;

    private CsraNet(Builder b, CsraModel model) {
        this.model = model;
        this.pixelSize = b.pixelSize;
        this.tileSize = b.tileSize;
        this.padding = b.padding;
        this.threads = b.threads;
        this.classNames = List.copyOf(b.classNames);
        this.options = b.options;
        this.progress = b.progress;
    }

    /** A builder with the bundled model, 0.5 µm pixels, tiles of 512 with 64 padding, 4 threads. */
    public static Builder builder() {
        return new Builder();
    }

    /** Settings of a {@link CsraNet}. */
    public static final class Builder {
        private Path weights;
        private double pixelSize = 0.5;
        private int tileSize = 512;
        private int padding = 64;
        private int threads = 4;
        private List<String> classNames = List.of();
        private SegmentOptions options;
        private ProgressListener progress;

        private Builder() {}

        /** Weights (.safetensors written by csranet); without it, the bundled model. */
        public Builder weights(Path path) { weights = Objects.requireNonNull(path, "path"); return this; }
        public Builder weights(String path) { return weights(Path.of(path)); }
        /**
         * Pixel size in µm to run at (the model was trained at about 0.5 µm, 20x); the image is
         * read at the matching downsample. Non-positive or NaN: full resolution. Ignored for
         * images without a pixel size.
         */
        public Builder pixelSize(double microns) { pixelSize = microns; return this; }
        /** Tile side in pixels at the working resolution, padding included (64..2048). */
        public Builder tileSize(int v) { tileSize = v; return this; }
        /** Context around each tile (keep above the largest nucleus diameter). */
        public Builder padding(int v) { padding = v; return this; }
        /** Tiles segmented concurrently. */
        public Builder threads(int v) { threads = v; return this; }
        /**
         * Names of classes 1, 2, ... (class 0 is background) instead of the model's; classes past
         * the list keep the model's names. The colours stay the model's.
         */
        public Builder classNames(String... names) { return classNames(Arrays.asList(names)); }
        public Builder classNames(List<String> names) {
            Objects.requireNonNull(names, "names");
            names.forEach(n -> Objects.requireNonNull(n, "class name"));
            classNames = List.copyOf(names);
            return this;
        }
        /** Native segmentation options (h-maxima, min area, ...). */
        public Builder options(SegmentOptions v) { options = v; return this; }
        /** Also report tile progress here (returning false cancels). */
        public Builder progress(ProgressListener v) { progress = v; return this; }

        /** Loads the model; the CsraNet owns it ({@link CsraNet#close()} frees it). */
        public CsraNet build() {
            // Validate the tiling settings before loading anything.
            CsraModel m = weights == null ? CsraModel.createDefault() : CsraModel.load(weights);
            try {
                TiledSegmenter.builder(m).tileSize(tileSize).padding(padding).threads(threads).build();
            } catch (RuntimeException e) {
                m.close();
                throw e;
            }
            return new CsraNet(this, m);
        }
    }

    /** The model (for direct use of the Java API). */
    public CsraModel getModel() {
        return model;
    }

    /**
     * Detects nuclei inside each parent (an annotation, or the root object for the whole image)
     * and replaces its child objects with them, as QuPath's StarDist extension does. Stops early,
     * leaving the current parent as it was, when the thread is interrupted.
     */
    public void detectObjects(ImageData<BufferedImage> imageData, Collection<? extends PathObject> parents) {
        Objects.requireNonNull(imageData, "imageData");
        Objects.requireNonNull(parents, "parents");
        var hierarchy = imageData.getHierarchy();
        for (PathObject parent : new ArrayList<>(parents)) {
            if (Thread.currentThread().isInterrupted()) {
                logger.warn("CSRA-Net detection interrupted");
                return;
            }
            boolean wasLocked = parent.isLocked();
            parent.setLocked(true); // as StarDist does: no edits while its children are computed
            List<PathObject> detections;
            try {
                detections = detectObjects(imageData, parent.isRootObject() ? null : parent.getROI());
                parent.clearChildObjects();
                parent.addChildObjects(detections);
            } catch (CsraCancelledException e) {
                logger.warn("CSRA-Net detection cancelled for {}: {}", parent, e.getMessage());
                return;
            } finally {
                parent.setLocked(wasLocked);
            }
            hierarchy.fireHierarchyChangedEvent(this, parent);
            logger.info("CSRA-Net: {} nuclei in {}", detections.size(), parent);
        }
    }

    /**
     * Detects nuclei in a ROI (null: the whole image) and returns them as detection objects
     * (not added to the hierarchy).
     *
     * @throws CsraCancelledException when interrupted or cancelled by the progress listener
     */
    public List<PathObject> detectObjects(ImageData<BufferedImage> imageData, ROI roi) {
        ImageServer<BufferedImage> server = imageData.getServer();
        if (!server.isRGB()) {
            throw new IllegalArgumentException("CSRA-Net needs an RGB (brightfield H&E) image");
        }
        PixelCalibration cal = server.getPixelCalibration();
        double downsample = 1.0;
        if (pixelSize > 0 && cal.hasPixelSizeMicrons()) {
            downsample = pixelSize / cal.getAveragedPixelSizeMicrons();
        }
        final double ds = downsample;
        int fullW = server.getWidth();
        int fullH = server.getHeight();
        int imageW = (int) Math.ceil(fullW / ds);
        int imageH = (int) Math.ceil(fullH / ds);
        int x0 = 0;
        int y0 = 0;
        int x1 = imageW;
        int y1 = imageH;
        ImagePlane plane = ImagePlane.getDefaultPlane();
        if (roi != null) {
            x0 = (int) Math.floor(roi.getBoundsX() / ds);
            y0 = (int) Math.floor(roi.getBoundsY() / ds);
            x1 = (int) Math.ceil((roi.getBoundsX() + roi.getBoundsWidth()) / ds);
            y1 = (int) Math.ceil((roi.getBoundsY() + roi.getBoundsHeight()) / ds);
            plane = roi.getImagePlane();
        }
        final int z = plane.getZ();
        final int t = plane.getT();
        TiledSegmenter.TileReader reader = (x, y, w, h) -> {
            int fx = (int) Math.min(fullW - 1, Math.round(x * ds));
            int fy = (int) Math.min(fullH - 1, Math.round(y * ds));
            int fw = (int) Math.max(1, Math.min(fullW - fx, Math.round(w * ds)));
            int fh = (int) Math.max(1, Math.min(fullH - fy, Math.round(h * ds)));
            return server.readRegion(RegionRequest.createInstance(server.getPath(), ds, fx, fy, fw, fh, z, t));
        };
        TiledSegmenter segmenter = TiledSegmenter.builder(model).tileSize(tileSize).padding(padding).threads(threads)
                .options(options).build();
        ProgressListener listener = (done, total) -> {
            logger.info("CSRA-Net: {} / {} tiles", done, total);
            return progress == null || progress.progress(done, total);
        };
        TiledSegmenter.Result result;
        try {
            result = segmenter.segment(reader, imageW, imageH, x0, y0, x1 - x0, y1 - y0, listener);
        } catch (IOException e) {
            throw new UncheckedIOException("CSRA-Net: cannot read the image", e);
        }
        logger.info("CSRA-Net at downsample {}: {}", ds, result);

        boolean microns = cal.hasPixelSizeMicrons();
        double pixelArea = microns ? cal.getPixelWidthMicrons() * cal.getPixelHeightMicrons() : Double.NaN;
        List<PathObject> out = new ArrayList<>(result.instances().size());
        Map<Integer, PathClass> classes = new HashMap<>();
        for (Instance i : result.instances()) {
            double cx = i.centroidX() * ds;
            double cy = i.centroidY() * ds;
            if (roi != null && !roi.contains(cx, cy)) {
                continue;
            }
            double[] xs = i.polygonX();
            double[] ys = i.polygonY();
            for (int k = 0; k < xs.length; k++) {
                xs[k] *= ds;
                ys[k] *= ds;
            }
            ROI poly = ROIs.createPolygonROI(xs, ys, plane);
            PathObject det = PathObjects.createDetectionObject(poly, classes.computeIfAbsent(i.classId(), this::pathClass));
            try (var ml = det.getMeasurementList()) {
                double area = i.area() * ds * ds;
                ml.put("Score", i.score());
                ml.put("Area px^2", area);
                if (microns) {
                    ml.put("Area µm^2", area * pixelArea);
                }
            }
            out.add(det);
        }
        return out;
    }

    /**
     * The QuPath class of a class id: the name from {@link Builder#classNames} or else the model's
     * (capital first letter), in the model's colour; "Class N" in grey past the model's classes.
     */
    PathClass pathClass(int classId) {
        int n = model.numClasses();
        if (classId < 0 || classId >= n) {
            return PathClass.fromString("Class " + classId, ColorTools.packRGB(128, 128, 128));
        }
        String name = classId >= 1 && classId <= classNames.size()
                ? classNames.get(classId - 1)
                : titleCase(model.className(classId));
        int[] c = model.classColour(classId);
        return PathClass.fromString(name, ColorTools.packRGB(c[0], c[1], c[2]));
    }

    /** {@code name} with its first letter upper-cased, as csranet writes class names for QuPath. */
    static String titleCase(String name) {
        if (name.isEmpty()) {
            return name;
        }
        int first = Character.charCount(name.codePointAt(0));
        return name.substring(0, first).toUpperCase(Locale.ROOT) + name.substring(first);
    }

    /** Frees the model. */
    @Override
    public void close() {
        model.close();
    }
}
