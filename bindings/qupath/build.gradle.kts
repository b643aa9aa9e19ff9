plugins {
    id("qupath-conventions")
}

qupathExtension {
    name = "qupath-extension-csranet"
    group = "io.csranet"
    version = "0.1.0"
    description = "CSRA-Net nucleus detection for H&E (csranet), with a scriptable builder"
    automaticModule = "io.csranet.qupath"
}

// All the logic lives in the csranet Java API (../java, tested there with `cargo test --test java`).
// Its sources are compiled into this jar, and the natives it loads (natives/<os>-<arch>/) come
// from ../java/build/resources: run ../java/build.sh before this build.
sourceSets {
    main {
        java.srcDir("../java/src/main/java")
        resources.srcDir("../java/build/resources")
    }
}

dependencies {
    implementation(libs.bundles.qupath)
    implementation(libs.bundles.logging)
    implementation(libs.qupath.fxtras)
}

tasks.processResources {
    doFirst {
        if (!file("../java/build/resources/natives").isDirectory) {
            throw GradleException("no ../java/build/resources/natives: run bindings/java/build.sh first")
        }
    }
}
