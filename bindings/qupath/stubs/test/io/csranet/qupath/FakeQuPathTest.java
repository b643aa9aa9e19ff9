package io.csranet.qupath;

import io.csranet.CsraModel;
import io.csranet.Instance;
import io.csranet.TiledSegmenter;
import java.awt.image.BufferedImage;
import java.io.File;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import javax.imageio.ImageIO;
import qupath.lib.common.ColorTools;
import qupath.lib.images.ImageData;
import qupath.lib.images.servers.ImageServer;
import qupath.lib.images.servers.PixelCalibration;
import qupath.lib.objects.PathObject;
import qupath.lib.objects.PathObjects;
import qupath.lib.regions.ImagePlane;
import qupath.lib.regions.RegionRequest;
import qupath.lib.roi.ROIs;
import qupath.lib.roi.interfaces.ROI;

/**
 * Runs {@link CsraNet} against the stand-in QuPath classes of {@code stubs/src} (NOT QuPath): an
 * image server over he_500.png at 0.25 µm per pixel read at a downsample by nearest neighbour,
 * annotations, the hierarchy. Checks the extension's own logic: downsample and region
 * mapping, ROI filtering, classes, measurements, replacing children, locking, interruption.
 *
 * <p>Usage: {@code FakeQuPathTest FIXTURES_DIR} with the csranet native library loadable.
 */
public final class FakeQuPathTest {
    static int failures;

    static void check(boolean cond, String what) {
        if (!cond) {
            failures++;
            System.out.println("FAIL " + what);
        }
    }

    /** A fake RGB server over a full-resolution image; regions read by nearest neighbour. */
    static ImageServer<BufferedImage> server(BufferedImage full, boolean rgb) {
        return new ImageServer<>() {
            @Override public String getPath() { return "fake://he_500"; }
            @Override public int getWidth() { return full.getWidth(); }
            @Override public int getHeight() { return full.getHeight(); }
            @Override public boolean isRGB() { return rgb; }
            @Override public PixelCalibration getPixelCalibration() { return new PixelCalibration(0.25, 0.25); }
            @Override public BufferedImage readRegion(RegionRequest r) {
                double ds = r.getDownsample();
                int w = (int) Math.max(1, Math.round(r.getWidth() / ds));
                int h = (int) Math.max(1, Math.round(r.getHeight() / ds));
                BufferedImage out = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        int fx = Math.min(full.getWidth() - 1, (int) (r.getX() + x * ds));
                        int fy = Math.min(full.getHeight() - 1, (int) (r.getY() + y * ds));
                        out.setRGB(x, y, full.getRGB(fx, fy));
                    }
                }
                return out;
            }
        };
    }

    public static void main(String[] args) throws Exception {
        BufferedImage full = ImageIO.read(new File(args[0], "he_500.png"));
        ImageData<BufferedImage> imageData = new ImageData<>(server(full, true));
        var hierarchy = imageData.getHierarchy();
        ROI annotationRoi = ROIs.createPolygonROI(new double[] {60, 440, 420, 90}, new double[] {50, 80, 450, 400},
                ImagePlane.getDefaultPlane());
        PathObject annotation = PathObjects.createAnnotationObject(annotationRoi);
        hierarchy.getRootObject().addChildObjects(List.of(annotation));

        // Expected: the Java API on the image downsampled 2x (0.25 -> 0.5 µm) the same way.
        BufferedImage half = imageData.getServer().readRegion(RegionRequest.createInstance("x", 2, 0, 0, 500, 500, 0, 0));
        List<Instance> expected = new ArrayList<>();
        try (CsraModel m = CsraModel.createDefault()) {
            TiledSegmenter.Result r = TiledSegmenter.builder(m).tileSize(128).padding(32).threads(2).build()
                    .segment((x, y, w, h) -> half.getSubimage(x, y, w, h), 250, 250, 30, 25, 190, 200, null);
            for (Instance i : r.instances()) {
                if (annotationRoi.contains(i.centroidX() * 2, i.centroidY() * 2)) {
                    expected.add(i);
                }
            }
        }

        long t0 = System.nanoTime();
        try (CsraNet csranet = CsraNet.builder().pixelSize(0.5).tileSize(128).padding(32).threads(2).build()) {
            csranet.detectObjects(imageData, List.of(annotation));
            double secs = (System.nanoTime() - t0) / 1e9;
            List<PathObject> dets = new ArrayList<>(annotation.getChildObjects());
            System.out.printf(Locale.ROOT, "fake QuPath: %d detections in the annotation (%.2f s); expected %d%n",
                    dets.size(), secs, expected.size());
            check(dets.size() == expected.size(), "detections " + dets.size() + " vs Java API " + expected.size());
            check(dets.size() >= 10, "at least 10 nuclei");
            check(!annotation.isLocked(), "lock restored");
            check(hierarchy.events.size() == 1 && hierarchy.events.get(0) == annotation, "one hierarchy event");
            // Classes as the model names and colours them ("Other" is QuPath's predefined class, so
            // its colour must be QuPath's for the detections to show the model's colour).
            CsraModel m = csranet.getModel();
            List<String> consep = List.of("Other", "Inflammatory", "Epithelial", "Spindle-shaped");
            Set<String> names = new HashSet<>(consep);
            for (int k = 0; k < Math.min(dets.size(), expected.size()); k++) {
                PathObject d = dets.get(k);
                Instance e = expected.get(k);
                ROIs.ShapeROI roi = (ROIs.ShapeROI) d.getROI();
                check(d.isDetection(), "detection object");
                check(names.contains(d.getPathClass().getName()), "class " + d.getPathClass());
                check(d.getPathClass().getName().equals(consep.get(e.classId() - 1)), "class of " + k);
                int[] c = m.classColour(e.classId());
                check(d.getPathClass().getColor() == ColorTools.packRGB(c[0], c[1], c[2]),
                        "class " + d.getPathClass() + " is shown in the model's colour");
                double[] ex = e.polygonX();
                double[] ey = e.polygonY();
                boolean same = ex.length == roi.xs.length;
                for (int p = 0; same && p < ex.length; p++) {
                    same = ex[p] * 2 == roi.xs[p] && ey[p] * 2 == roi.ys[p];
                }
                check(same, "polygon " + k + " is the instance's, scaled to full resolution");
                check(annotationRoi.contains(e.centroidX() * 2, e.centroidY() * 2), "centroid in the annotation");
                var ml = d.getMeasurementList();
                check(ml.get("Score") == e.score(), "Score");
                check(ml.get("Area px^2") == e.area() * 4.0, "Area px^2 at full resolution");
                check(Math.abs(ml.get("Area µm^2") - e.area() * 4.0 * 0.0625) < 1e-9, "Area µm^2");
            }

            // Running again replaces the children; an interrupted run leaves them.
            csranet.detectObjects(imageData, List.of(annotation));
            check(annotation.getChildObjects().size() == dets.size(), "children replaced, not added");
            Thread.currentThread().interrupt();
            csranet.detectObjects(imageData, List.of(annotation));
            check(Thread.interrupted(), "interrupt flag kept");
            check(annotation.getChildObjects().size() == dets.size() && !annotation.isLocked(),
                    "an interrupted run changes nothing");

            // Cancelled from the progress listener inside a run: the parent is left as it was.
            try (CsraNet cancelling = CsraNet.builder().tileSize(128).padding(32).progress((d, t) -> false).build()) {
                cancelling.detectObjects(imageData, List.of(annotation));
                check(annotation.getChildObjects().size() == dets.size(), "a cancelled run changes nothing");
            }

            // The whole image (root object) and the list-returning variant.
            List<PathObject> all = csranet.detectObjects(imageData, (ROI) null);
            check(all.size() > dets.size(), "whole image has more nuclei than the annotation: " + all.size());
            for (PathObject d : all) {
                ROIs.ShapeROI r = (ROIs.ShapeROI) d.getROI();
                for (int p = 0; p < r.xs.length; p++) {
                    check(r.xs[p] >= 0 && r.xs[p] <= 500 && r.ys[p] >= 0 && r.ys[p] <= 500, "inside the image");
                }
            }
            System.out.println("fake QuPath: whole image " + all.size() + " detections");
            try {
                csranet.detectObjects(new ImageData<>(server(full, false)), (ROI) null);
                check(false, "a non-RGB image is refused");
            } catch (IllegalArgumentException e) {
                check(e.getMessage().contains("RGB"), e.getMessage());
            }
        }
        try (CsraNet named = CsraNet.builder().classNames("A", "B").build()) {
            check(named.pathClass(1).getName().equals("A"), "a name given to the builder");
            check(named.pathClass(3).getName().equals("Epithelial"), "past the given names, the model's");
            check(named.pathClass(5).getName().equals("Class 5"), "past the model's classes");
            check(named.pathClass(5).getColor() == ColorTools.packRGB(128, 128, 128), "grey");
        }
        check(CsraNet.titleCase("spindle-shaped").equals("Spindle-shaped") && CsraNet.titleCase("").isEmpty()
                && CsraNet.titleCase("écaille").equals("Écaille"), "titleCase");
        try {
            CsraNet.builder().tileSize(10).build();
            check(false, "a bad tile size is refused");
        } catch (IllegalArgumentException expectedFailure) {
            // refused before use
        }
        System.out.println(failures == 0 ? "fake QuPath test passed" : "fake QuPath test: " + failures + " failures");
        System.exit(failures == 0 ? 0 : 1);
    }
}
